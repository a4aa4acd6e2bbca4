"""faces.embedding_vector: the templates as pgvector vectors, searched by the pgvector gallery.

The column exists only on PostgreSQL with the ``vector`` extension (migration 0004 (pgvector) adds it
and its HNSW index). This module is the one place that knows whether it is there and the one place
that writes it (``vector_columns``), so that every template stored also lands in the index. The
vector is in clear: an index cannot search encrypted values.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from facever.app.db.models import VECTOR_DIM

COLUMN = "embedding_vector"
INDEX = "ix_faces_embedding_hnsw"

_dims: weakref.WeakKeyDictionary[Engine, int | None] = weakref.WeakKeyDictionary()
_dims_lock = threading.Lock()


def column_dim(connection: Connection) -> int | None:
    """The dimension of faces.embedding_vector on this connection's database; None without it."""
    if connection.dialect.name != "postgresql":
        return None
    return connection.execute(
        text(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass('faces') "
            "AND attname = :column AND NOT attisdropped"
        ),
        {"column": COLUMN},
    ).scalar()


def vector_dim(engine: Engine) -> int | None:
    """``column_dim`` of the engine's database, looked up once per engine (the schema is migrated
    before the service starts; a process that migrates later must use a new engine)."""
    with _dims_lock:
        if engine not in _dims:
            with engine.connect() as connection:
                _dims[engine] = column_dim(connection)
        return _dims[engine]


def vector_columns(session: Session, embedding: np.ndarray) -> dict[str, np.ndarray]:
    """The keyword arguments of Face that store ``embedding`` in the vector column too: none where the
    column does not exist (SQLite, PostgreSQL without pgvector) or the model's size is not the column's."""
    engine = session.get_bind().engine
    if vector_dim(engine) == VECTOR_DIM == len(embedding):
        return {COLUMN: np.asarray(embedding, np.float32)}
    return {}
