"""API keys: missing or wrong -> 401, verify scope cannot manage identities -> 403, keys stored hashed."""

from __future__ import annotations

import hashlib

import pytest
from service_samples import ADMIN, ADMIN_KEY, VERIFY, VERIFY_KEY, files, lfw
from sqlalchemy import create_engine, text

from facever.app import auth as keys_module
from facever.app.core.config import get_settings

PHOTO = lfw("George_W_Bush", 1)


def assert_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


@pytest.fixture(scope="module")
def identity_id(client) -> int:
    return client.post("/v1/identities", json={"name": "Auth Test"}, headers=ADMIN).json()["id"]


def calls(identity_id: int):
    """Every protected endpoint, as (scope needed, method, path, request arguments)."""
    verify_files = files(image1=PHOTO, image2=PHOTO)
    return [
        ("verify", "POST", "/v1/verify", {"files": verify_files}),
        ("verify", "POST", "/v1/identify", {"files": files(image=PHOTO)}),
        ("verify", "GET", "/v1/info", {}),
        ("admin", "POST", "/v1/identities", {"json": {"name": "X"}}),
        ("admin", "GET", "/v1/identities", {}),
        ("admin", "GET", f"/v1/identities/{identity_id}", {}),
        ("admin", "POST", f"/v1/identities/{identity_id}/faces", {"files": {"images": ("a.jpg", PHOTO)}}),
        ("admin", "DELETE", f"/v1/identities/{identity_id}/faces/999999", {}),
        ("admin", "DELETE", f"/v1/identities/{identity_id}", {}),
    ]


def test_a_missing_key_is_401(client, identity_id):
    for _, method, path, kwargs in calls(identity_id):
        assert_error(client.request(method, path, **kwargs), 401, "missing_api_key")


def test_a_wrong_key_is_401(client, identity_id):
    for _, method, path, kwargs in calls(identity_id):
        response = client.request(method, path, headers={"X-API-Key": "fvk_wrong"}, **kwargs)
        assert_error(response, 401, "invalid_api_key")


def test_a_verify_key_cannot_manage_identities(client, identity_id):
    for scope, method, path, kwargs in calls(identity_id):
        response = client.request(method, path, headers=VERIFY, **kwargs)
        if scope == "admin":
            assert_error(response, 403, "insufficient_scope")
        else:
            assert response.status_code == 200, (path, response.text)
    assert client.get(f"/v1/identities/{identity_id}", headers=ADMIN).status_code == 200  # not deleted


def test_an_admin_key_may_verify_too(client):
    response = client.post("/v1/verify", files=files(image1=PHOTO, image2=PHOTO), headers=ADMIN)
    assert response.status_code == 200, response.text


def test_operations_endpoints_need_no_key(client):
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_a_created_key_works_and_only_its_hash_is_stored(client, database_url, monkeypatch):
    monkeypatch.setenv("FACEVER_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        shown = keys_module.create_key_cli("verify", "ci")
    finally:
        get_settings.cache_clear()
    key = next(word for word in shown.split() if word.startswith("fvk_"))

    assert (
        client.post("/v1/identify", files=files(image=PHOTO), headers={"X-API-Key": key}).status_code == 200
    )
    forbidden = client.post("/v1/identities", json={"name": "No"}, headers={"X-API-Key": key})
    assert_error(forbidden, 403, "insufficient_scope")

    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT name, scope, key_hash, key_prefix FROM api_keys")).all()
    finally:
        engine.dispose()
    assert ("ci", "verify", hashlib.sha256(key.encode()).hexdigest(), key[:10]) in [
        tuple(row) for row in rows
    ]
    for row in rows:
        assert key not in " ".join(str(value) for value in row)
        assert ADMIN_KEY not in " ".join(str(value) for value in row)  # bootstrap keys are never stored
        assert VERIFY_KEY not in " ".join(str(value) for value in row)


def test_an_unknown_scope_is_refused():
    with pytest.raises(ValueError, match="scope"):
        keys_module.create_key_cli("root", "")


def test_auth_disabled_serves_without_keys_and_says_so(sqlite_url, start_app):
    with start_app(sqlite_url, auth="disabled", api_keys_admin="", api_keys_verify="") as open_client:
        info = open_client.get("/v1/info")
        assert info.status_code == 200
        assert info.json()["auth"] == "disabled"
        assert "DISABLED" in info.json()["warning"]
        created = open_client.post("/v1/identities", json={"name": "Open"})
        assert created.status_code == 201


def test_auth_enabled_reports_no_warning(client):
    body = client.get("/v1/info", headers=VERIFY).json()
    assert body["auth"] == "enabled" and body["warning"] is None
