"""Alembic environment. Used by facever.app.db.migrate (which passes an open connection) and by the
alembic command line (``alembic -c app/alembic.ini ...``, which uses FACEVER_DATABASE_URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from facever.app.core.config import get_settings
from facever.app.db.models import Base
from facever.app.db.session import create_db_engine

config = context.config
target_metadata = Base.metadata

# Replicas starting together on one PostgreSQL take turns: the second waits, then finds the schema current.
MIGRATION_LOCK_ID = 0x66616365766572  # "facever"


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().database_url


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    from facever.app.db.migrate import foreign_keys_off

    engine = create_db_engine(database_url())
    try:
        with engine.connect() as connection, foreign_keys_off(connection):
            run_on(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
