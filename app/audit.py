"""The audit trail: one record per verify, identity verify, identify, identity creation, enrollment,
deletion and retention erasure, saying who (API key id and name) did what to whom, with which result
(decision, score, threshold, model) and under which request id. Never an image or a template.

Records are appended, never changed: the API only reads them (GET /v1/audit), the database refuses
UPDATE (a trigger), and only the retention sweep deletes those older than FACEVER_AUDIT_RETENTION_DAYS.
Changes (enrollment, deletion, erasure) write their record in the same transaction as the change, so
there is never one without the other; decisions (verify, identify) write theirs before answering.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from facever.app.db.models import AuditIdentity, AuditRecord
from facever.app.stored_embeddings import ModelRef

Operation = Literal[
    "verify",
    "identity_verify",
    "identify",
    "create_identity",
    "enroll",
    "delete_identity",
    "delete_face",
    "expire_identity",
]
OPERATIONS: tuple[str, ...] = get_args(Operation)


@dataclass(frozen=True)
class Actor:
    """Who acted: an API key (its id in api_keys, None for keys from the environment) and its name."""

    api_key_id: int | None
    name: str


RETENTION = Actor(None, "facever retention (FACEVER_IDENTITY_RETENTION_DAYS or expires_at)")


@dataclass(frozen=True)
class AuditEntry:
    operation: Operation
    actor: Actor
    identity_ids: Sequence[int] = ()
    decision: str | None = None
    score: float | None = None
    threshold: float | None = None
    model: ModelRef | None = None
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def add(session: Session, entry: AuditEntry) -> AuditRecord:
    """Add the record to the session's transaction; the caller commits it with its change."""
    identity_ids = list(dict.fromkeys(entry.identity_ids))
    record = AuditRecord(
        operation=entry.operation,
        api_key_id=entry.actor.api_key_id,
        api_key_name=entry.actor.name,
        identity_ids=identity_ids,
        decision=entry.decision,
        score=entry.score,
        threshold=entry.threshold,
        model_name=entry.model.name if entry.model else None,
        model_version=entry.model.version if entry.model else None,
        request_id=entry.request_id,
        detail=entry.detail,
    )
    session.add(record)
    session.flush()
    session.add_all(AuditIdentity(audit_id=record.id, identity_id=i) for i in identity_ids)
    return record


def append(session: Session, entry: AuditEntry) -> None:
    """Record a decision on its own (verify, identify)."""
    add(session, entry)
    session.commit()


@dataclass(frozen=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    operation: str | None = None
    identity_id: int | None = None
    api_key_id: int | None = None
    api_key_name: str | None = None


def page(session: Session, where: AuditFilter, before_id: int | None, limit: int) -> list[AuditRecord]:
    """Up to ``limit`` records matching ``where``, newest first, with ids below ``before_id``."""
    query = select(AuditRecord)
    if where.since is not None:
        query = query.where(AuditRecord.at >= where.since)
    if where.until is not None:
        query = query.where(AuditRecord.at < where.until)
    if where.operation is not None:
        query = query.where(AuditRecord.operation == where.operation)
    if where.api_key_id is not None:
        query = query.where(AuditRecord.api_key_id == where.api_key_id)
    if where.api_key_name is not None:
        query = query.where(AuditRecord.api_key_name == where.api_key_name)
    if where.identity_id is not None:
        involved = select(AuditIdentity.audit_id).where(AuditIdentity.identity_id == where.identity_id)
        query = query.where(AuditRecord.id.in_(involved))
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    return list(session.scalars(query.order_by(AuditRecord.id.desc()).limit(limit)))


def delete_older_than(session: Session, cutoff: datetime) -> int:
    """The retention sweep: delete records from before ``cutoff``; how many. Idempotent, so several
    processes may run it at once."""
    old = select(AuditRecord.id).where(AuditRecord.at < cutoff)
    session.execute(delete(AuditIdentity).where(AuditIdentity.audit_id.in_(old)))
    deleted = session.execute(delete(AuditRecord).where(AuditRecord.at < cutoff))
    session.commit()
    return deleted.rowcount  # type: ignore[attr-defined]
