"""Whether the database can take a write now, for /readyz: SQLite's write lock can be had, and its
disk (and size limit) has room. PostgreSQL is not probed here (its disk is the server's to watch),
though a write it refuses for a full disk or a lock is answered 503 like SQLite's."""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from facever.app.db.errors import FULL, Retryable, retryable

# Below this much room (on the disk, or under SQLite's max_page_count) a write may fail: not ready.
MIN_FREE_BYTES = 1 << 20
# How long the probe waits for SQLite's write lock: a writer of this service holds it for milliseconds.
PROBE_BUSY_MS = 500


def write_problem(engine: Engine) -> Retryable | None:
    """None when a write would be taken now; else why not (the 503 it would get)."""
    if engine.dialect.name != "sqlite":
        return None
    try:
        return _sqlite_problem(engine)
    except OperationalError as exc:
        condition = retryable(exc)
        if condition is None:
            raise
        return condition


def _sqlite_problem(engine: Engine) -> Retryable | None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        timeout_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {PROBE_BUSY_MS}")
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, given back at once
            try:
                free = _sqlite_free_bytes(connection)
            finally:
                connection.exec_driver_sql("ROLLBACK")
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(timeout_ms or 0)}")
    return FULL if free < MIN_FREE_BYTES else None


def _sqlite_free_bytes(connection: Connection) -> int:
    """Room for new pages: the lesser of the disk's free space (for this user) and max_page_count's."""
    pragma = {
        name: int(connection.exec_driver_sql(f"PRAGMA {name}").scalar() or 0)
        for name in ("page_size", "page_count", "freelist_count", "max_page_count")
    }
    under_limit = (pragma["max_page_count"] - pragma["page_count"] + pragma["freelist_count"]) * pragma[
        "page_size"
    ]
    path = connection.engine.url.database
    if not path or path == ":memory:":
        return under_limit
    disk = os.statvfs(Path(path).resolve().parent)
    return min(under_limit, disk.f_bavail * disk.f_frsize)
