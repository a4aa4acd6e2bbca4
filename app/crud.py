"""Database reads and writes. Every write that adds or removes templates goes through
``_next_gallery_version`` first, in the same transaction (see facever.app.gallery for why)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, Result, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facever.app import audit
from facever.app.audit import AuditEntry
from facever.app.core import security
from facever.app.db.models import ApiKey, Face, GalleryChange, GalleryState, Identity
from facever.app.db.session import erase_deleted
from facever.app.db.vectors import vector_columns
from facever.app.stored_embeddings import ModelRef, TemplateCodec

# Versions of the change log kept for replicas catching up; one further behind reloads the gallery.
CHANGE_LOG_KEEP = 10_000


class ExternalIdTaken(Exception):
    pass


@dataclass(frozen=True)
class NewTemplate:
    embedding: np.ndarray
    detection_score: float
    quality: float | None = None


# -- identities ------------------------------------------------------------------------------------


def create_identity(
    session: Session,
    name: str,
    external_id: str | None,
    attributes: dict[str, Any],
    expires_at: datetime | None = None,
    record: AuditEntry | None = None,
) -> Identity:
    identity = Identity(name=name, external_id=external_id, attributes=attributes, expires_at=expires_at)
    session.add(identity)
    try:
        session.flush()
        if record is not None:
            audit.add(session, replace(record, identity_ids=[identity.id]))
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ExternalIdTaken(external_id) from None
    return identity


def expires_at(identity: Identity, retention_days: int) -> datetime | None:
    """When the service erases the identity: its own expires_at or FACEVER_IDENTITY_RETENTION_DAYS after
    its creation, whichever comes first; None when neither applies."""
    times = [identity.expires_at] if identity.expires_at is not None else []
    if retention_days:
        times.append(identity.created_at + timedelta(days=retention_days))
    return min(times) if times else None


def expired_identities(session: Session, now: datetime, retention_days: int, limit: int) -> list[Identity]:
    """Identities past their expiry (see ``expires_at``), oldest first."""
    expired = Identity.expires_at <= now
    if retention_days:
        expired = or_(expired, Identity.created_at <= now - timedelta(days=retention_days))
    return list(session.scalars(select(Identity).where(expired).order_by(Identity.id).limit(limit)))


def get_identity(session: Session, identity_id: int) -> Identity | None:
    return session.get(Identity, identity_id)


def identities_by_id(session: Session, ids: Iterable[int]) -> dict[int, Identity]:
    ids = list(ids)
    if not ids:
        return {}
    return {
        identity.id: identity for identity in session.scalars(select(Identity).where(Identity.id.in_(ids)))
    }


def list_identities(
    session: Session, offset: int, limit: int, without_model: ModelRef | None = None, name: str | None = None
) -> tuple[list[Identity], int]:
    """A page of identities and their total; with ``without_model``, only those that have no template
    of that model (to re-enroll after a model change); with ``name``, only those whose name contains it
    (case-insensitive for ASCII letters)."""
    query = select(Identity)
    if name:
        pattern = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Identity.name.ilike(f"%{pattern}%", escape="\\"))
    if without_model is not None:
        current = select(Face.id).where(
            Face.identity_id == Identity.id,
            Face.model_name == without_model.name,
            Face.model_version == without_model.version,
        )
        query = query.where(~current.exists())
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = session.scalars(query.order_by(Identity.id).offset(offset).limit(limit)).all()
    return list(page), total


def face_counts(session: Session, identity_ids: Sequence[int], model: ModelRef) -> dict[int, tuple[int, int]]:
    """identity id -> (templates of ``model``, templates of other models)."""
    if not identity_ids:
        return {}
    current = (Face.model_name == model.name) & (Face.model_version == model.version)
    rows = session.execute(
        select(Face.identity_id, current.label("current"), func.count())
        .where(Face.identity_id.in_(identity_ids))
        .group_by(Face.identity_id, current)
    )
    counts = {identity_id: [0, 0] for identity_id in identity_ids}
    for identity_id, is_current, count in rows:
        counts[identity_id][0 if is_current else 1] += count
    return {identity_id: (c[0], c[1]) for identity_id, c in counts.items()}


def faces_of(session: Session, identity_id: int) -> list[Face]:
    return list(session.scalars(select(Face).where(Face.identity_id == identity_id).order_by(Face.id)))


def templates_of(
    session: Session, identity_id: int, model: ModelRef, dim: int, codec: TemplateCodec
) -> tuple[list[int], np.ndarray]:
    """Face ids and (N, dim) templates of one identity made by ``model``; other models' are left out."""
    rows = session.execute(
        select(Face.id, Face.identity_id, Face.embedding, Face.key_id)
        .where(
            Face.identity_id == identity_id,
            Face.model_name == model.name,
            Face.model_version == model.version,
        )
        .order_by(Face.id)
    ).all()
    return [row.id for row in rows], codec.open(rows, dim)


def add_templates(
    session: Session,
    identity_id: int,
    model: ModelRef,
    templates: Sequence[NewTemplate],
    codec: TemplateCodec,
    record: AuditEntry | None = None,
) -> list[Face] | None:
    """Store templates for an identity; None when the identity does not exist (any more). The face ids
    are reserved first: an encrypted template is bound to its face id, so each row is written once,
    already encrypted."""
    version = _next_gallery_version(session)
    if session.get(Identity, identity_id) is None:
        session.rollback()
        return None
    rows = []
    for face_id, template in zip(_reserve_face_ids(session, len(templates)), templates, strict=True):
        embedding, key_id = codec.seal(template.embedding, face_id, identity_id)
        rows.append(
            {
                "id": face_id,
                "identity_id": identity_id,
                "model_name": model.name,
                "model_version": model.version,
                "embedding": embedding,
                "key_id": key_id,
                "detection_score": template.detection_score,
                "quality": template.quality,
                # in clear: PostgreSQL must read it to search (README, "Biometric data")
                **vector_columns(session, template.embedding),
            }
        )
    # A bulk INSERT names only the columns given: SQLite's faces has no embedding_vector.
    faces = list(session.scalars(insert(Face).returning(Face, sort_by_parameter_order=True), rows))
    session.add_all(GalleryChange(version=version, op="add_face", face_id=face.id) for face in faces)
    if record is not None:
        audit.add(session, replace(record, detail={**record.detail, "face_ids": [f.id for f in faces]}))
    session.commit()
    return faces


def delete_identity(session: Session, identity_id: int, record: AuditEntry | None = None) -> bool:
    """Delete an identity and every template of it (of any model). False when there is no such identity
    (any more): then nothing is recorded, so that racing deleters leave one audit record."""
    version = _next_gallery_version(session)
    removed_faces = _rowcount(session.execute(delete(Face).where(Face.identity_id == identity_id)))
    deleted = _rowcount(session.execute(delete(Identity).where(Identity.id == identity_id)))
    if not deleted:
        session.rollback()
        return False
    session.add(GalleryChange(version=version, op="remove_identity", identity_id=identity_id))
    if record is not None:
        audit.add(session, replace(record, detail={**record.detail, "templates_erased": removed_faces}))
    session.commit()
    erase_deleted(session.get_bind().engine)
    return True


def delete_face(session: Session, identity_id: int, face_id: int, record: AuditEntry | None = None) -> bool:
    version = _next_gallery_version(session)
    deleted = _rowcount(
        session.execute(delete(Face).where(Face.id == face_id, Face.identity_id == identity_id))
    )
    if not deleted:
        session.rollback()
        return False
    session.add(GalleryChange(version=version, op="remove_face", face_id=face_id))
    if record is not None:
        audit.add(session, record)
    session.commit()
    erase_deleted(session.get_bind().engine)
    return True


def _reserve_face_ids(session: Session, count: int) -> list[int]:
    """Ids for ``count`` new faces, never used before. PostgreSQL: from the id sequence. SQLite: above
    the highest ever given (AUTOINCREMENT's record, or the table's), which no one else can take before
    this transaction commits: it holds the write lock since ``_next_gallery_version``."""
    if not count:
        return []
    if session.get_bind().dialect.name == "postgresql":
        reserve = text("SELECT nextval(pg_get_serial_sequence('faces', 'id')) FROM generate_series(1, :n)")
        return list(session.scalars(reserve, {"n": count}))
    highest = session.scalar(
        text(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'faces'), 0), "
            "coalesce((SELECT max(id) FROM faces), 0))"
        )
    )
    return list(range(highest + 1, highest + 1 + count))


def _rowcount(result: Result[Any]) -> int:
    """The rows a DELETE or UPDATE matched: Session.execute returns a CursorResult for those, typed as
    the plain Result that has no rowcount."""
    return cast(CursorResult[Any], result).rowcount


def _next_gallery_version(session: Session) -> int:
    """Bump the gallery version. This must be the transaction's first statement: on PostgreSQL it
    locks the row until commit, so writers commit in version order and a replica that sees version
    v also sees every change up to v; on SQLite it takes the database's write lock up front."""
    version = session.execute(
        update(GalleryState)
        .where(GalleryState.id == 1)
        .values(version=GalleryState.version + 1)
        .returning(GalleryState.version)
    ).scalar_one()
    session.execute(delete(GalleryChange).where(GalleryChange.version <= version - CHANGE_LOG_KEEP))
    return version


# -- API keys --------------------------------------------------------------------------------------


def create_api_key(session: Session, scope: str, name: str) -> tuple[ApiKey, str]:
    """A new key: the row (hash only) and the key itself, which is not stored anywhere."""
    key = security.new_key()
    row = ApiKey(
        name=name, scope=scope, key_hash=security.hash_key(key), key_prefix=security.display_prefix(key)
    )
    session.add(row)
    session.commit()
    return row, key


def key_of_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


def count_api_keys(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiKey)) or 0


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def delete_api_key(session: Session, key_id: int) -> ApiKey | None:
    """Remove a key (its hash): every later request with it is refused. The row, or None if none."""
    row = session.get(ApiKey, key_id)
    if row is not None:
        session.delete(row)
        session.commit()
    return row


# -- template keys ---------------------------------------------------------------------------------


def key_ids_in_use(session: Session) -> dict[str | None, int]:
    """Template key id (None: in clear) -> how many stored templates use it."""
    rows = session.execute(select(Face.key_id, func.count()).group_by(Face.key_id))
    return {key_id: count for key_id, count in rows}


def faces_not_under(session: Session, key_id: str, after_id: int, limit: int) -> list[Any]:
    """The next ``limit`` faces (by id, above ``after_id``) whose template is not under ``key_id``."""
    return list(
        session.execute(
            select(Face.id, Face.identity_id, Face.embedding, Face.key_id)
            .where(Face.id > after_id, or_(Face.key_id.is_(None), Face.key_id != key_id))
            .order_by(Face.id)
            .limit(limit)
        )
    )


def replace_template(
    session: Session, face_id: int, old_key_id: str | None, blob: bytes, key_id: str
) -> bool:
    """Store a face's template re-encrypted; only if it is still under ``old_key_id`` (a row deleted or
    rotated meanwhile is left alone). The template's value is unchanged, so the gallery is not told."""
    old = Face.key_id.is_(None) if old_key_id is None else Face.key_id == old_key_id
    result = session.execute(
        update(Face).where(Face.id == face_id, old).values(embedding=blob, key_id=key_id)
    )
    return _rowcount(result) == 1
