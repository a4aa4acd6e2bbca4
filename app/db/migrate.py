"""Alembic, driven from code: the service applies migrations at start, ``facever db upgrade`` on demand."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

from facever.app.core.config import get_settings
from facever.app.db.session import create_db_engine


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("facever.app") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # ConfigParser interpolation
    return config


def upgrade(url: str | None = None, engine: Engine | None = None) -> None:
    """Bring the database at ``url`` (default: the configured one) to the newest schema."""
    url = url or get_settings().database_url
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one INFO line per plugin
    own_engine = engine is None
    engine = engine or create_db_engine(url)
    try:
        with engine.connect() as connection, foreign_keys_off(connection), connection.begin():
            config = alembic_config(url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if own_engine:
            engine.dispose()


@contextmanager
def foreign_keys_off(connection: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while migrating, checked and back on after. A migration that copies a
    table (SQLite's only way to change some of it) drops the old one, which with foreign keys on would
    delete the rows that refer to it (ON DELETE CASCADE). SQLite honours the pragma only outside a
    transaction, hence here and not in the migration."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
    finally:
        connection.rollback()  # nothing is open unless the check failed
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
