"""Health, readiness, metrics, /v1/info, the OpenAPI schema, migrations and the database set-up."""

from __future__ import annotations

import pytest
from service_samples import ADMIN, VERIFY, files, lfw
from sqlalchemy import create_engine, inspect, text
from typer.testing import CliRunner

from facever.app.db.session import Database
from facever.cli import app as cli


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_readyz(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"model": "ok", "gallery": "ok", "database": "ok"}


def test_readyz_fails_when_the_database_is_unreachable(client):
    service = client.app.state.service
    working = service.database
    service.database = Database("postgresql+psycopg://postgres@127.0.0.1:9/nothing?connect_timeout=2")
    try:
        response = client.get("/readyz")
    finally:
        service.database.dispose()
        service.database = working
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert "database" in response.json()["error"]["message"]


def test_metrics_count_requests_per_route_and_inference(client):
    photo = lfw("George_W_Bush", 1)
    assert (
        client.post("/v1/verify", files=files(image1=photo, image2=photo), headers=VERIFY).status_code == 200
    )
    assert client.get("/v1/identities/424242", headers=ADMIN).status_code == 404
    text_ = client.get("/metrics").text
    assert 'facever_http_requests_total{method="POST",route="/v1/verify",status="200"}' in text_
    assert (
        'facever_http_requests_total{method="GET",route="/v1/identities/{identity_id}",status="404"}' in text_
    )
    assert (
        'facever_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/v1/verify"}' in text_
    )
    for stage in ("decode", "detect", "embed"):
        assert f'facever_inference_seconds_count{{stage="{stage}"}}' in text_
    embedded = next(line for line in text_.splitlines() if line.startswith("facever_faces_embedded_total "))
    assert float(embedded.split()[1]) >= 2
    assert "facever_gallery_templates " in text_


def test_info(client, pipeline):
    body = client.get("/v1/info", headers=VERIFY).json()
    assert body["model"]["name"] == pipeline.card.name and body["model"]["version"] == pipeline.card.version
    assert body["model"]["embedding_size"] == pipeline.card.embedding_size
    assert body["threshold"] == pipeline.card.threshold
    assert body["providers"] == pipeline.providers and "CPUExecutionProvider" in body["providers"]
    assert body["gallery"]["templates"] == client.app.state.service.gallery.size
    assert body["limits"]["max_image_bytes"] == 10 * 1024 * 1024
    assert body["limits"]["max_image_pixels"] == 40_000_000
    assert body["database"] in {"sqlite", "postgresql"}
    settings = client.app.state.service.settings
    assert (body["inference_workers"], body["ort_threads"]) == (
        settings.resolved_inference_workers,
        settings.resolved_ort_threads,
    )


def test_the_openapi_schema_documents_both_body_forms_with_examples(client):
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path, image_field in [
        ("/v1/verify", "image1"),
        ("/v1/identify", "image"),
        ("/v1/identities/{identity_id}/verify", "image"),
        ("/v1/identities/{identity_id}/faces", "images"),
    ]:
        content = paths[path]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "application/json"}, path
        assert image_field in content["multipart/form-data"]["schema"]["properties"]
        assert content["application/json"]["schema"]["examples"], path
        assert "422" in paths[path]["post"]["responses"]
    components = schema["components"]["schemas"]
    assert components["VerifyResponse"]["examples"]
    assert "cosine similarity" in components["VerifyResponse"]["properties"]["score"]["description"]
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    for path in (
        "/v1/identities",
        "/v1/identities/{identity_id}",
        "/v1/identify",
        "/v1/info",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/identities/{identity_id}/faces/{face_id}",
    ):
        assert path in paths


def test_facever_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path, monkeypatch):
    from facever.app.core.config import get_settings

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FACEVER_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        for _ in range(2):
            result = CliRunner().invoke(cli, ["db", "upgrade"])
            assert result.exit_code == 0, result.output
            assert "up to date" in result.output
    finally:
        get_settings.cache_clear()
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version FROM gallery_state")).scalar_one() == 0
    finally:
        engine.dispose()
    assert tables >= {
        "identities",
        "faces",
        "api_keys",
        "gallery_state",
        "gallery_changes",
        "alembic_version",
    }


def test_sqlite_runs_in_wal_mode(sqlite_client, sqlite_url):
    with sqlite_client.app.state.service.database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


@pytest.mark.parametrize("key", ["unknown", ""])
def test_keys_create_rejects_bad_scopes(key):
    result = CliRunner().invoke(cli, ["keys", "create", "--scope", key])
    assert result.exit_code != 0
