"""Fixtures for the service tests: real LFW images, one loaded model, SQLite and PostgreSQL databases,
and apps driven through TestClient."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient
from service_samples import ADMIN_KEY, VERIFY_KEY
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from facever.app.core.config import Settings, shipped_model_dir
from facever.app.main import create_app
from facever.model.runtime import FacePipeline

POSTGRES_URL = os.environ.get(
    "FACEVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# -- the model -------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """FACEVER_* variables of the shell must not change the settings the tests build."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("FACEVER_") and not name.startswith("FACEVER_TEST_"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def pipeline() -> FacePipeline:
    """The shipped model (or FACEVER_TEST_MODEL_DIR, to try a candidate), loaded once for every app."""
    return FacePipeline(os.environ.get("FACEVER_TEST_MODEL_DIR") or shipped_model_dir(), device="auto")


# -- databases -------------------------------------------------------------------------------------


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a fresh, empty schema of the PostgreSQL server, dropped after."""
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - whatever the driver raises, the server is not usable
        engine.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_URL} ({type(exc).__name__})"
        if os.environ.get("FACEVER_TEST_REQUIRE_POSTGRES") == "1":  # CI: a skipped database is a failure
            pytest.fail(message)
        pytest.skip(f"{message}; CI starts it")
    schema = f"facever_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    _create_pgvector_in_public(engine)
    try:
        # public after the module's own schema: where the vector extension's type and operators live.
        yield (
            make_url(POSTGRES_URL)
            .update_query_dict({"options": f"-csearch_path={schema},public"})
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def _create_pgvector_in_public(engine) -> None:
    """The vector extension, once per database, in public: a migration run in a module's schema would
    create it there, and dropping that schema would drop it for every other module. CI installs
    pgvector (.ci/run), so the PostgreSQL tests run the pgvector gallery; without it they run the
    in-memory one, and FACEVER_TEST_REQUIRE_PGVECTOR=1 (CI) makes that a failure."""
    with engine.begin() as connection:
        available = connection.execute(
            text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        ).scalar()
        if available:
            try:
                with connection.begin_nested():
                    connection.execute(text("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public"))
            except IntegrityError:  # another test process created it at the same moment
                pass
    if not available and os.environ.get("FACEVER_TEST_REQUIRE_PGVECTOR") == "1":
        pytest.fail(f"the vector extension (pgvector) is not installed on {POSTGRES_URL}")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path_factory) -> Iterator[str]:
    """A fresh database per test module, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'facever.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture(scope="module")
def sqlite_url(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'facever.db'}"


# -- apps ------------------------------------------------------------------------------------------


def make_settings(database_url: str, **overrides) -> Settings:
    values = {
        "database_url": database_url,
        "auth": "enabled",
        "api_keys_admin": ADMIN_KEY,
        "api_keys_verify": VERIFY_KEY,
        "gallery_poll_interval": 0.2,
        **overrides,
    }
    return Settings(**values)


@contextmanager
def running_app(settings: Settings, pipeline: FacePipeline) -> Iterator[TestClient]:
    """An app instance with its lifespan (migrations, gallery, polling) running."""
    with TestClient(create_app(settings, pipeline)) as client:
        yield client


@pytest.fixture(scope="session")
def start_app(pipeline: FacePipeline):
    """``with start_app(database_url, **settings) as client``: a new app instance, sharing the model."""

    def start(database_url: str, **overrides):
        return running_app(make_settings(database_url, **overrides), pipeline)

    return start


@pytest.fixture(scope="module")
def client(database_url: str, start_app) -> Iterator[TestClient]:
    """An app on the module's database (SQLite, then PostgreSQL)."""
    with start_app(database_url) as client:
        yield client


@pytest.fixture(scope="module")
def sqlite_client(sqlite_url: str, start_app) -> Iterator[TestClient]:
    """An app on SQLite only, for what does not depend on the database."""
    with start_app(sqlite_url) as client:
        yield client
