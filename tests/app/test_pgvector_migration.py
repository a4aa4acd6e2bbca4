"""Migration 0004 (pgvector) on a fresh PostgreSQL database: it creates the extension, adds
faces.embedding_vector filled with the templates stored before it, builds the HNSW index, and the
downgrade removes both; without the right to create the extension, and on SQLite, it changes nothing
and the service keeps the in-memory gallery."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from alembic import command
from conftest import POSTGRES_URL, postgres_schema
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from facever.app.core.config import Settings
from facever.app.db.migrate import alembic_config, upgrade
from facever.app.db.models import VECTOR_DIM
from facever.app.db.session import Database
from facever.app.db.vectors import INDEX, column_dim
from facever.app.gallery import Gallery
from facever.app.gallery_backend import open_gallery
from facever.app.pgvector_gallery import PgvectorGallery
from facever.app.stored_embeddings import ModelRef, to_bytes

pytestmark = pytest.mark.postgres


def pgvector_installed() -> bool:
    with postgres_schema() as url:  # skips (or fails in CI) without PostgreSQL
        engine = create_engine(url)
        with engine.connect() as connection:
            found = connection.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))
            installed = found.scalar() is not None
        engine.dispose()
    if not installed and os.environ.get("FACEVER_TEST_REQUIRE_PGVECTOR") != "1":
        pytest.skip("pgvector is not installed on this PostgreSQL")
    return installed


@contextmanager
def fresh_database(owner: str = "postgres") -> Iterator[str]:
    """A new database (no extension created in it yet) owned by ``owner``, dropped after."""
    name = f"facever_migration_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" OWNER "{owner}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name, username=owner).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


def stored_rows(url: str, templates: list[np.ndarray]) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO identities (id, name, metadata) VALUES (1, 'x', '{}')"))
        for template in templates:
            connection.execute(
                text(
                    "INSERT INTO faces (identity_id, model_name, model_version, embedding, detection_score) "
                    "VALUES (1, 'facever', '1', :embedding, 0.9)"
                ),
                {"embedding": to_bytes(template)},
            )
    engine.dispose()


def test_upgrade_fills_the_vector_column_and_builds_the_index_and_downgrade_removes_them():
    assert pgvector_installed()
    rng = np.random.default_rng(0)
    templates = [v / np.linalg.norm(v) for v in rng.normal(size=(7, VECTOR_DIM)).astype(np.float32)]
    smaller = np.ones(16, np.float32) / 4  # another model's size: not in the column
    with fresh_database() as url:
        command.upgrade(alembic_config(url), "0001")
        stored_rows(url, [*templates, smaller])
        upgrade(url)

        engine = create_engine(url)
        with engine.connect() as connection:
            assert column_dim(connection) == VECTOR_DIM
            rows = connection.execute(text("SELECT embedding_vector::text FROM faces ORDER BY id")).scalars()
            vectors = list(rows)
            assert vectors[-1] is None
            filled = np.array([np.array(v.strip("[]").split(","), np.float32) for v in vectors[:-1]])
            assert np.array_equal(filled, np.stack(templates))  # bit for bit
            index = connection.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": INDEX}
            ).scalar()
            assert index is not None and "hnsw" in index and "vector_cosine_ops" in index
        engine.dispose()

        database = Database(url)
        gallery = open_gallery(Settings(), database, ModelRef("facever", "1"), VECTOR_DIM)
        assert isinstance(gallery, PgvectorGallery)
        database.dispose()

        command.downgrade(alembic_config(url), "0001")
        engine = create_engine(url)
        with engine.connect() as connection:
            assert column_dim(connection) is None
            assert (
                connection.execute(
                    text("SELECT 1 FROM pg_indexes WHERE indexname = :name"), {"name": INDEX}
                ).scalar()
                is None
            )
            assert connection.execute(text("SELECT count(*) FROM faces")).scalar() == 8  # templates kept
        engine.dispose()


def test_without_the_right_to_create_the_extension_nothing_changes():
    """A role that may not CREATE EXTENSION vector (not a superuser): the migration is applied, adds
    nothing, and the service's gallery is the in-memory one."""
    assert pgvector_installed()
    role = f"facever_plain_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        with fresh_database(owner=role) as url:
            upgrade(url)
            database = Database(url)
            with database.engine.connect() as connection:
                assert column_dim(connection) is None
                assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == (
                    "0004"
                )
            assert isinstance(
                open_gallery(Settings(), database, ModelRef("facever", "1"), VECTOR_DIM), Gallery
            )
            database.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def facever_db_pgvector(url: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "FACEVER_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "facever.cli", "db", "pgvector"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sqlite_gets_no_vector_column(sqlite_url):
    upgrade(sqlite_url)
    refused = facever_db_pgvector(sqlite_url)
    assert refused.returncode == 1 and "no pgvector column" in refused.stderr
    engine = create_engine(sqlite_url)
    with engine.connect() as connection:
        columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(faces)")]
    engine.dispose()
    assert "embedding" in columns and "embedding_vector" not in columns
