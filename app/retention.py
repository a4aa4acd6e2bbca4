"""Retention: the service erases expired identities and old audit records by itself.

An identity expires at its own ``expires_at`` (set at creation) or FACEVER_IDENTITY_RETENTION_DAYS after
its creation, whichever comes first. Every server process sweeps every FACEVER_RETENTION_SWEEP_INTERVAL
seconds; an expired identity is erased through the same path as DELETE /v1/identities/{id}
(``crud.delete_identity``: its templates go with it, SQLite's files are checkpointed, PostgreSQL's
table vacuumed), with an ``expire_identity`` audit record written in the same transaction. Processes
sweeping at the same time are safe: the deletes are serialised by the gallery version row, and the one
that finds the identity already gone changes nothing and records nothing, so each erasure is recorded
once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from facever.app import audit, crud
from facever.app.audit import RETENTION, AuditEntry
from facever.app.core.config import Settings
from facever.app.db.session import Database

log = logging.getLogger("facever.retention")

BATCH = 100  # expired identities read per query


@dataclass(frozen=True)
class SweepResult:
    erased_identities: list[int]
    deleted_audit_records: int


def sweep(settings: Settings, database: Database, now: datetime | None = None) -> SweepResult:
    """One sweep (blocking: run it in a thread)."""
    now = now or datetime.now(UTC)
    days = settings.identity_retention_days
    erased: list[int] = []
    while True:
        with database.sessions() as session:
            expired = crud.expired_identities(session, now, days, BATCH)
        for identity in expired:
            own = identity.expires_at is not None and identity.expires_at <= now
            record = AuditEntry(
                "expire_identity",
                RETENTION,
                [identity.id],
                decision="erased",
                detail={
                    "reason": "expires_at" if own else "FACEVER_IDENTITY_RETENTION_DAYS",
                    "expires_at": crud.expires_at(identity, days).isoformat(),  # type: ignore[union-attr]
                },
            )
            with database.sessions() as session:
                if crud.delete_identity(session, identity.id, record):
                    erased.append(identity.id)
        if len(expired) < BATCH:
            break
    if erased:
        log.info("retention: erased %d expired identities: %s", len(erased), erased[:20])
    deleted = 0
    if settings.audit_retention_days:
        with database.sessions() as session:
            deleted = audit.delete_older_than(session, now - timedelta(days=settings.audit_retention_days))
        if deleted:
            log.info(
                "retention: deleted %d audit records older than %d days",
                deleted,
                settings.audit_retention_days,
            )
    return SweepResult(erased, deleted)
