"""Database errors that are a passing condition, not a bug: another writer holds the lock, or the disk
is full. Each is answered 503 with a code and ``Retry-After`` (facever.app.errors), on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError

from facever.model.errors import ErrorCode


@dataclass(frozen=True)
class Retryable:
    code: ErrorCode
    message: str
    retry_after_s: int


BUSY = Retryable(
    ErrorCode.DATABASE_BUSY,
    "the database is locked by another writer; nothing was stored, retry shortly",
    1,
)
FULL = Retryable(
    ErrorCode.STORAGE_FULL,
    "the database's storage is full; nothing was stored, retry once space is freed",
    30,
)

# SQLite result codes (primary code: the extended code's low byte).
_SQLITE = {5: BUSY, 6: BUSY, 13: FULL}  # SQLITE_BUSY, SQLITE_LOCKED, SQLITE_FULL
# PostgreSQL SQLSTATEs: lock_not_available (lock_timeout), serialization_failure, deadlock_detected;
# disk_full. Class 53 (insufficient resources) besides disk_full is left to the generic path.
_POSTGRES = {"55P03": BUSY, "40001": BUSY, "40P01": BUSY, "53100": FULL}


def retryable(error: BaseException) -> Retryable | None:
    """What ``error`` (SQLAlchemy's wrapper of a driver error) means for the client, or None when it is
    not one of the passing conditions above."""
    if not isinstance(error, DBAPIError):
        return None
    original = error.orig
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if sqlite_code is not None:
        return _SQLITE.get(sqlite_code & 0xFF)
    return _POSTGRES.get(getattr(original, "sqlstate", None) or "")
