"""The tables. Migrations in facever.app.migrations create them; keep the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pgvector.sqlalchemy import VECTOR
from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Dimension of faces.embedding_vector (PostgreSQL with pgvector; migration 0004 (pgvector)): the shipped
# model's embedding size. A model of another size is served by the in-memory gallery.
VECTOR_DIM = 128

# SQLite only autoincrements an INTEGER PRIMARY KEY, PostgreSQL should get a 64-bit key.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp that always reads back timezone-aware (SQLite drops the zone; values are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        # SQLite keeps a time as text without its zone, and compares it as text: store UTC only.
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Identity(Base):
    __tablename__ = "identities"
    # AUTOINCREMENT: SQLite must never reuse the id of a deleted identity (audit records name them by id).
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256), unique=True)
    # "metadata" is reserved by SQLAlchemy's declarative classes, hence another attribute name.
    attributes: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    # Erased by the service at this time (facever.app.retention); None = kept until deleted, or until
    # FACEVER_IDENTITY_RETENTION_DAYS after created_at when that is set.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class Face(Base):
    """One enrolled template: the embedding of one face, never the image it came from."""

    __tablename__ = "faces"
    # AUTOINCREMENT: SQLite must never reuse the id of a deleted face (the gallery log refers to ids).
    __table_args__ = (Index("ix_faces_model", "model_name", "model_version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identity_id: Mapped[int] = mapped_column(Id, ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    # float32, little-endian, unit length; encrypted when key_id is set (facever.app.template_crypto)
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    key_id: Mapped[str | None] = mapped_column(String(32), index=True)
    detection_score: Mapped[float] = mapped_column(Float)
    # The face's overall quality score (0..1) at enrollment; None for faces enrolled before it was kept.
    quality: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    # The same template as a pgvector vector, which identify searches through an HNSW index. Only on
    # PostgreSQL with the extension (migration 0004 (pgvector)): never loaded (deferred) and only ever set
    # through facever.app.db.vectors.vector_columns, so SQLite, which has no such column, never sees it.
    embedding_vector: Mapped[Any] = mapped_column(VECTOR(VECTOR_DIM), nullable=True, deferred=True)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), default="")
    scope: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the key
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class GalleryState(Base):
    """One row: the gallery's version, bumped by every transaction that adds or removes templates."""

    __tablename__ = "gallery_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class GalleryChange(Base):
    """What a gallery version changed, so that replicas catch up without reloading every template."""

    __tablename__ = "gallery_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, index=True)
    op: Mapped[str] = mapped_column(String(16))  # add_face | remove_face | remove_identity
    face_id: Mapped[int | None] = mapped_column(BigInteger)
    identity_id: Mapped[int | None] = mapped_column(BigInteger)


class AuditRecord(Base):
    """One decision or change: who (API key) did what to whom, with which result. Append-only: the
    database refuses UPDATE (a trigger, see the migration 0002); only the retention sweep deletes.
    Never an image or a template."""

    __tablename__ = "audit_records"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    operation: Mapped[str] = mapped_column(String(32), index=True)
    api_key_id: Mapped[int | None] = mapped_column(BigInteger, index=True)  # api_keys.id; None: not stored
    api_key_name: Mapped[str] = mapped_column(String(300))
    identity_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    decision: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditIdentity(Base):
    """The identities an audit record involves, one row each, so that records are found by identity."""

    __tablename__ = "audit_identities"

    audit_id: Mapped[int] = mapped_column(
        Id, ForeignKey("audit_records.id", ondelete="CASCADE"), primary_key=True
    )
    identity_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, index=True)
