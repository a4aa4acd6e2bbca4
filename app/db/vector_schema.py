"""Adding and removing faces.embedding_vector and its HNSW index (migration 0004 (pgvector), and
``facever db pgvector`` for a PostgreSQL that gets the extension after that migration ran)."""

from __future__ import annotations

import logging

from pgvector import Vector
from sqlalchemy import Connection, text

from facever.app.db.models import VECTOR_DIM
from facever.app.db.vectors import COLUMN, INDEX, column_dim
from facever.app.stored_embeddings import TemplateCodec, from_bytes

log = logging.getLogger("facever.db")

BACKFILL_CHUNK = 5000


def add_vector_column(connection: Connection) -> bool:
    """Create the extension if needed, add the column, fill it from the stored templates of
    VECTOR_DIM floats, and build the index. True when the column is there (now or already); False,
    changing nothing, on SQLite or where the extension cannot be created."""
    if connection.dialect.name != "postgresql":
        return False
    if column_dim(connection) is not None:
        return True
    if not _extension_ready(connection):
        return False
    connection.execute(text(f"ALTER TABLE faces ADD COLUMN {COLUMN} vector({VECTOR_DIM})"))
    filled = _backfill(connection)
    create_index(connection)  # after the back-fill: one build is much faster than row-by-row inserts
    log.info("pgvector: faces.%s added, %d templates filled, HNSW index %s built", COLUMN, filled, INDEX)
    return True


def create_index(connection: Connection) -> None:
    """The HNSW index (pgvector's defaults: m 16, ef_construction 64) on the cosine distance."""
    connection.execute(text(f"CREATE INDEX {INDEX} ON faces USING hnsw ({COLUMN} vector_cosine_ops)"))


def drop_vector_column(connection: Connection) -> None:
    """Remove the index and the column (the extension stays: other databases' objects may use it)."""
    if connection.dialect.name != "postgresql":
        return
    connection.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
    connection.execute(text(f"ALTER TABLE faces DROP COLUMN IF EXISTS {COLUMN}"))


def _extension_ready(connection: Connection) -> bool:
    """The type ``vector`` resolves here, creating the extension if it is installed but not created."""
    if connection.execute(text("SELECT to_regtype('vector')")).scalar() is not None:
        return True
    created = connection.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'vector'")).scalar()
    if created:
        log.warning(
            "pgvector: the extension exists in a schema outside the search path; the in-memory gallery "
            "stays (add that schema to the search path, then run `facever db pgvector`)"
        )
        return False
    installed = connection.execute(
        text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if not installed:
        log.info("pgvector is not installed on this PostgreSQL: the in-memory gallery stays")
        return False
    try:
        with connection.begin_nested():  # a failure must not abort the migration's transaction
            connection.execute(text("CREATE EXTENSION vector"))
    except Exception as exc:  # noqa: BLE001 - typically no privilege: say so and keep the memory gallery
        log.warning(
            "pgvector: CREATE EXTENSION vector failed (%s); the in-memory gallery stays. A superuser can "
            "run it, then `facever db pgvector`",
            exc.__class__.__name__,
        )
        return False
    return True


def _backfill(connection: Connection) -> int:
    filled, last = 0, 0
    while True:
        rows = connection.execute(
            text(
                "SELECT id, embedding FROM faces WHERE id > :last AND key_id IS NULL "
                "AND octet_length(embedding) = :size ORDER BY id LIMIT :chunk"
            ),
            {"last": last, "size": 4 * VECTOR_DIM, "chunk": BACKFILL_CHUNK},
        ).all()
        if not rows:
            return filled
        vectors = from_bytes([row.embedding for row in rows], VECTOR_DIM)
        connection.execute(
            text(f"UPDATE faces SET {COLUMN} = CAST(:vector AS vector) WHERE id = :id"),
            [
                {"id": row.id, "vector": Vector(vector).to_text()}
                for row, vector in zip(rows, vectors, strict=True)
            ],
        )
        filled += len(rows)
        last = rows[-1].id


def fill_encrypted(connection: Connection, codec: TemplateCodec) -> int:
    """Fill the vector of every encrypted template that has none: the migration cannot (it holds no
    key), so the service does it at start with its key ring. Returns how many it filled."""
    filled, last = 0, 0
    while True:
        rows = connection.execute(
            text(
                f"SELECT id, identity_id, embedding, key_id FROM faces WHERE id > :last AND {COLUMN} IS NULL "
                "AND key_id IS NOT NULL ORDER BY id LIMIT :chunk"
            ),
            {"last": last, "chunk": BACKFILL_CHUNK},
        ).all()
        if not rows:
            return filled
        plain = [(row.id, codec.open_bytes(row)) for row in rows]
        updates = [
            {"id": face_id, "vector": Vector(from_bytes([data], VECTOR_DIM)[0]).to_text()}
            for face_id, data in plain
            if len(data) == 4 * VECTOR_DIM  # another model's size never goes into the column
        ]
        if updates:
            connection.execute(
                text(f"UPDATE faces SET {COLUMN} = CAST(:vector AS vector) WHERE id = :id"), updates
            )
        filled += len(updates)
        last = rows[-1].id
