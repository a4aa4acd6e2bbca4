"""Migrating a database of the previous schema (0001) with data to the newest keeps every row: the
migration 0003 copies SQLite's identities table (for AUTOINCREMENT), which must not cascade to faces."""

from __future__ import annotations

import pytest
from alembic import command
from conftest import postgres_schema
from sqlalchemy import text

from facever.app.db.migrate import alembic_config, upgrade
from facever.app.db.session import create_db_engine


def alembic_command_line(url: str, engine) -> None:
    """As ``alembic -c app/alembic.ini upgrade head`` does: the environment opens its own connection."""
    command.upgrade(alembic_config(url), "head")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh database for each test (the module-wide one of conftest would be migrated already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'facever.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.mark.parametrize("upgrade_to_head", [upgrade, alembic_command_line], ids=["facever", "alembic"])
def test_upgrading_from_0001_keeps_identities_faces_and_their_links(database_url, upgrade_to_head):
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO identities (name, external_id, metadata) "
                    "VALUES ('a', 'x1', '{}'), ('b', NULL, '{}')"
                )
            )
            ids = connection.execute(text("SELECT id FROM identities ORDER BY id")).scalars().all()
            for identity_id in ids:
                connection.execute(
                    text(
                        "INSERT INTO faces (identity_id, model_name, model_version, embedding, "
                        "detection_score) VALUES (:id, 'm', 'v', :blob, 1.0)"
                    ),
                    {"id": identity_id, "blob": bytes([identity_id]) * 8},
                )
        upgrade_to_head(database_url, engine)
        with engine.begin() as connection:
            faces = connection.execute(text("SELECT identity_id, key_id FROM faces ORDER BY id")).all()
            assert [tuple(f) for f in faces] == [(ids[0], None), (ids[1], None)]
            assert connection.execute(text("SELECT count(*) FROM audit_records")).scalar() == 0
            connection.execute(text("DELETE FROM identities WHERE id = :id"), {"id": ids[1]})
            # The faces still refer to identities: deleting one takes its faces (and only those).
            assert connection.execute(text("SELECT identity_id FROM faces")).scalars().all() == [ids[0]]
            if engine.dialect.name == "sqlite":
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on
    finally:
        engine.dispose()


def test_the_identities_copy_refuses_to_run_with_foreign_keys_on(tmp_path):
    url = f"sqlite:///{tmp_path / 'facever.db'}"
    engine = create_db_engine(url)  # its connections have foreign keys on
    try:
        with engine.begin() as connection:
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            with pytest.raises(RuntimeError, match="foreign keys off"):
                command.upgrade(config, "head")
    finally:
        engine.dispose()
