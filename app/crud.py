"""Database reads and writes. Every write that adds or removes templates goes through
``_next_gallery_version`` first, in the same transaction (see facever.app.gallery for why)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, Result, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facever.app.core import security
from facever.app.db.models import ApiKey, Face, GalleryChange, GalleryState, Identity
from facever.app.db.session import erase_deleted
from facever.app.db.vectors import vector_columns
from facever.app.stored_embeddings import ModelRef, from_bytes, to_bytes

# Versions of the change log kept for replicas catching up; one further behind reloads the gallery.
CHANGE_LOG_KEEP = 10_000


class ExternalIdTaken(Exception):
    pass


@dataclass(frozen=True)
class NewTemplate:
    embedding: np.ndarray
    detection_score: float


# -- identities ------------------------------------------------------------------------------------


def create_identity(
    session: Session, name: str, external_id: str | None, attributes: dict[str, Any]
) -> Identity:
    identity = Identity(name=name, external_id=external_id, attributes=attributes)
    session.add(identity)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ExternalIdTaken(external_id) from None
    return identity


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
    session: Session, identity_id: int, model: ModelRef, dim: int
) -> tuple[list[int], np.ndarray]:
    """Face ids and (N, dim) templates of one identity made by ``model``; other models' are left out."""
    rows = session.execute(
        select(Face.id, Face.embedding)
        .where(
            Face.identity_id == identity_id,
            Face.model_name == model.name,
            Face.model_version == model.version,
        )
        .order_by(Face.id)
    ).all()
    return [row.id for row in rows], from_bytes([row.embedding for row in rows], dim)


def add_templates(
    session: Session, identity_id: int, model: ModelRef, templates: Sequence[NewTemplate]
) -> list[Face] | None:
    """Store templates for an identity; None when the identity does not exist (any more)."""
    version = _next_gallery_version(session)
    if session.get(Identity, identity_id) is None:
        session.rollback()
        return None
    rows = [
        {
            "identity_id": identity_id,
            "model_name": model.name,
            "model_version": model.version,
            "embedding": to_bytes(template.embedding),
            "detection_score": template.detection_score,
            **vector_columns(session, template.embedding),
        }
        for template in templates
    ]
    # A bulk INSERT names only the columns given: SQLite's faces has no embedding_vector.
    faces = list(session.scalars(insert(Face).returning(Face, sort_by_parameter_order=True), rows))
    session.add_all(GalleryChange(version=version, op="add_face", face_id=face.id) for face in faces)
    session.commit()
    return faces


def delete_identity(session: Session, identity_id: int) -> bool:
    """Delete an identity and every template of it (of any model)."""
    version = _next_gallery_version(session)
    session.execute(delete(Face).where(Face.identity_id == identity_id))
    deleted = _rowcount(session.execute(delete(Identity).where(Identity.id == identity_id)))
    if not deleted:
        session.rollback()
        return False
    session.add(GalleryChange(version=version, op="remove_identity", identity_id=identity_id))
    session.commit()
    erase_deleted(session.get_bind().engine)
    return True


def delete_face(session: Session, identity_id: int, face_id: int) -> bool:
    version = _next_gallery_version(session)
    deleted = _rowcount(
        session.execute(delete(Face).where(Face.id == face_id, Face.identity_id == identity_id))
    )
    if not deleted:
        session.rollback()
        return False
    session.add(GalleryChange(version=version, op="remove_face", face_id=face_id))
    session.commit()
    erase_deleted(session.get_bind().engine)
    return True


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


def scope_of_key_hash(session: Session, key_hash: str) -> str | None:
    return session.scalar(select(ApiKey.scope).where(ApiKey.key_hash == key_hash))


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
