"""Schemathesis over every operation of the OpenAPI schema, against an in-process app on SQLite and on
PostgreSQL: no request may get a 5xx, and every response must match its documented schema.

Bounded for CI (FACEVER_FUZZ_CASES cases per operation, generation mode and database, 12 by default: some
500 in all); `make fuzz` runs the long sitting with more."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from conftest import make_settings
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance
from service_samples import ADMIN

from facever.app.main import create_app

CASES = int(os.environ.get("FACEVER_FUZZ_CASES", "12"))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def _sittings() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every operation, read from the app's schema (no database needed): the
    negative mode only where there is something to break (parameters, a body, an API key)."""
    spec = create_app(make_settings("sqlite://")).openapi()
    sittings = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            sittings.append((method.upper(), path, GenerationMode.POSITIVE))
            if {"parameters", "requestBody", "security"} & set(operation):
                sittings.append((method.upper(), path, GenerationMode.NEGATIVE))
    return sittings


@pytest.fixture(scope="module")
def fuzz_schema(database_url, pipeline) -> Iterator:
    """The app's own schema; schemathesis runs the app (lifespan included) in-process over ASGI."""
    app = create_app(make_settings(database_url, max_enroll_images=3), pipeline)
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()  # closes this app's database before the next module's is dropped


@pytest.mark.parametrize(("method", "path", "mode"), _sittings())
def test_no_server_error_and_responses_conform(fuzz_schema, method, path, mode):
    """Positive cases fit the schema; negative ones break it (out-of-range ids, wrong types...)."""
    operation = fuzz_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=CASES,
        deadline=None,
        derandomize=os.environ.get("FACEVER_FUZZ_RANDOM") != "1",
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def sitting(case):
        # The admin key grants every scope: the requests reach the handlers, not only authentication.
        response = case.call_and_validate(headers=ADMIN, checks=CHECKS)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    statuses: dict[int, int] = {}
    sitting()
    total = sum(statuses.values())
    print(f"{mode} {method} {path}: {total} cases, statuses {dict(sorted(statuses.items()))}")
    assert total > 0
