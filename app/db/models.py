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

# Dimension of faces.embedding_vector (PostgreSQL with pgvector; migration 0002_pgvector): the shipped
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

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Identity(Base):
    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    external_id: Mapped[str | None] = mapped_column(String(256), unique=True)
    # "metadata" is reserved by SQLAlchemy's declarative classes, hence another attribute name.
    attributes: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())


class Face(Base):
    """One enrolled template: the embedding of one face, never the image it came from."""

    __tablename__ = "faces"
    # AUTOINCREMENT: SQLite must never reuse the id of a deleted face (the gallery log refers to ids).
    __table_args__ = (Index("ix_faces_model", "model_name", "model_version"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    identity_id: Mapped[int] = mapped_column(Id, ForeignKey("identities.id", ondelete="CASCADE"), index=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little-endian, unit length
    detection_score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=func.now())
    # The same template as a pgvector vector, which identify searches through an HNSW index. Only on
    # PostgreSQL with the extension (migration 0002_pgvector): never loaded (deferred) and only ever set
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
