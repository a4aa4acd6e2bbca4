"""The tester's reproducers (issue 9): ids and offsets beyond 64 bits, NUL characters, deeply nested JSON,
oversized metadata, a 500's log line, and consistent answers to malformed requests. Each gets a 4xx
with a documented code in the error envelope, on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from service_samples import ADMIN, SAME_PERSON, VERIFY, lfw

from facever.app.api.responses import IDENTITY_INPUT_DESCRIPTION
from facever.app.request_id import RequestIdLogFilter
from facever.app.schemas import _B64_EXAMPLE

TOO_BIG = 2**63  # 9223372036854775808
JSON = {"Content-Type": "application/json"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    assert response.headers["X-Request-ID"] == body["request_id"]
    return body


@pytest.fixture(scope="module")
def identity(client) -> int:
    response = client.post("/v1/identities", json={"name": "Bounds"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    identity_id = response.json()["id"]
    face = base64.b64encode(lfw(*SAME_PERSON[0])).decode()
    enrolled = client.post(f"/v1/identities/{identity_id}/faces", json={"images": [face]}, headers=ADMIN)
    assert enrolled.status_code == 201, enrolled.text
    return identity_id


# -- 1: ids and offsets beyond 64 bits -------------------------------------------------------------


@pytest.mark.parametrize("number", [TOO_BIG, 10**30, -(2**63) - 1, 0, -1])
def test_an_id_out_of_range_is_a_422(client, identity, number):
    assert_error(client.get(f"/v1/identities/{number}", headers=ADMIN), 422, "invalid_request")
    assert_error(client.delete(f"/v1/identities/{number}", headers=ADMIN), 422, "invalid_request")
    assert_error(
        client.delete(f"/v1/identities/{identity}/faces/{number}", headers=ADMIN), 422, "invalid_request"
    )
    assert_error(client.delete(f"/v1/identities/{number}/faces/1", headers=ADMIN), 422, "invalid_request")
    assert_error(
        client.post(f"/v1/identities/{number}/faces", json={"images": ["AAAA"]}, headers=ADMIN),
        422,
        "invalid_request",
    )
    assert_error(
        client.post(f"/v1/identities/{number}/verify", json={"image": "AAAA"}, headers=ADMIN),
        422,
        "invalid_request",
    )


def test_the_largest_id_is_a_404(client):
    assert_error(client.get(f"/v1/identities/{TOO_BIG - 1}", headers=ADMIN), 404, "identity_not_found")


def test_an_offset_out_of_range_is_a_422_and_the_largest_is_an_empty_page(client, identity):
    assert_error(client.get(f"/v1/identities?offset={TOO_BIG}", headers=ADMIN), 422, "invalid_request")
    response = client.get(f"/v1/identities?offset={TOO_BIG - 1}", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["items"] == []


# -- 2: text the databases cannot store ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "a\\u0000b"}',
        '{"name": "a", "external_id": "x\\u0000"}',
        '{"name": "a", "metadata": {"k\\u0000": 1}}',
        '{"name": "a", "metadata": {"k": ["v\\u0000"]}}',
        '{"name": "\\ud800"}',
        '{"name": "a", "metadata": {"k": "\\udfff"}}',
    ],
)
def test_nul_and_unpaired_surrogates_are_refused(client, body):
    response = client.post("/v1/identities", content=body, headers={**ADMIN, **JSON})
    assert_error(response, 422, "invalid_character")


# -- 3: deeply nested JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/verify", "image1"),
        ("/v1/identify", "image"),
        ("/v1/identities/{identity}/faces", "images"),
        ("/v1/identities/{identity}/verify", "image"),
        ("/v1/identities", "name"),
        ("/v1/identities", "metadata"),
    ],
)
def test_deeply_nested_json_is_invalid_json(client, identity, path, field):
    body = '{"' + field + '": ' + "[" * 50_000
    response = client.post(path.format(identity=identity), content=body, headers={**ADMIN, **JSON})
    assert_error(response, 422, "invalid_json")


# -- 6: metadata ------------------------------------------------------------------------------------


def test_metadata_over_the_limit_is_refused(client):
    response = client.post(
        "/v1/identities", json={"name": "Big", "metadata": {"x": "y" * 17_000}}, headers=ADMIN
    )
    assert_error(response, 422, "metadata_too_large")
    response = client.post(
        "/v1/identities", json={"name": "Fits", "metadata": {"x": "y" * 16_000}}, headers=ADMIN
    )
    assert response.status_code == 201, response.text


def test_the_metadata_limit_is_a_setting(sqlite_url, start_app):
    with start_app(sqlite_url, max_metadata_bytes=100) as client:
        response = client.post(
            "/v1/identities", json={"name": "a", "metadata": {"x": "y" * 100}}, headers=ADMIN
        )
        assert_error(response, 422, "metadata_too_large")


@pytest.mark.parametrize(
    "metadata", ['{"x": NaN}', '{"x": [Infinity]}', "[" * 40 + "]" * 40, '{"a":' * 40 + "1" + "}" * 40]
)
def test_unstorable_metadata_is_refused(client, metadata):
    if metadata.startswith("["):
        metadata = '{"deep": ' + metadata + "}"
    body = '{"name": "a", "metadata": ' + metadata + "}"
    assert_error(
        client.post("/v1/identities", content=body, headers={**ADMIN, **JSON}), 422, "invalid_metadata"
    )


# -- 9: a 500's log line names its request ---------------------------------------------------------


def test_the_log_line_of_a_500_carries_the_request_id(sqlite_url, pipeline):
    from conftest import make_settings
    from fastapi.testclient import TestClient

    from facever.app.main import create_app

    app = create_app(make_settings(sqlite_url), pipeline)

    @app.get("/boom")
    def boom():
        raise RuntimeError("boom")

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("facever.errors")
    logger.addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/boom", headers={"X-Request-ID": "req-500-test"})
    finally:
        logger.removeHandler(handler)
    body = assert_error(response, 500, "internal_error")
    assert body["request_id"] == "req-500-test"
    assert [record.request_id for record in records] == ["req-500-test"]


# -- 12: one answer to each kind of malformed request ----------------------------------------------


@pytest.mark.parametrize("body", [b'{"name": ', b"\xff\xfe{}", b'{"name": "a", "n": ' + b"1" * 5000 + b"}"])
def test_bad_json_is_invalid_json_everywhere(client, identity, body):
    headers = {**ADMIN, **JSON}
    assert_error(client.post("/v1/identities", content=body, headers=headers), 422, "invalid_json")
    assert_error(client.post("/v1/verify", content=body, headers=headers), 422, "invalid_json")
    assert_error(client.post("/v1/identify", content=body, headers=headers), 422, "invalid_json")
    assert_error(
        client.post(f"/v1/identities/{identity}/faces", content=body, headers=headers), 422, "invalid_json"
    )


def test_405_allows_every_method_of_the_path(client):
    response = client.put("/v1/identities/1", headers=ADMIN)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].split(", ")) == {"GET", "DELETE"}
    response = client.get("/v1/verify", headers=ADMIN)
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


def test_the_base64_examples_are_valid_base64(client):
    base64.b64decode(_B64_EXAMPLE, validate=True)
    schema = json.dumps(client.get("/openapi.json").json())
    assert _B64_EXAMPLE in schema and "..." not in _B64_EXAMPLE


def test_null_options_in_json_mean_the_defaults(client):
    face = base64.b64encode(lfw(*SAME_PERSON[0])).decode()
    payload = {"image1": face, "image2": face, "multi_face_policy": None, "threshold": None}
    response = client.post("/v1/verify", json=payload, headers=VERIFY)
    assert response.status_code == 200, response.text
    assert response.json()["verified"] is True


def test_the_form_schemas_do_not_advertise_null(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/verify", "/v1/identify"):
        form = spec["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert '"null"' not in json.dumps(form), path


def multipart(parts: list[tuple[str, bytes]], boundary: str = "fvboundary") -> bytes:
    body = b""
    for name, data in parts:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n"
            ).encode()
            + data
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


def test_a_truncated_multipart_body_is_invalid_multipart(client):
    face = lfw(*SAME_PERSON[0])
    body = multipart([("image1", face), ("image2", face)])
    headers = {**VERIFY, "Content-Type": "multipart/form-data; boundary=fvboundary"}
    assert client.post("/v1/verify", content=body, headers=headers).status_code == 200
    for cut in (len(body) - 10, len(body) // 2, len(body) // 4):
        response = client.post("/v1/verify", content=body[:cut], headers=headers)
        body_json = assert_error(response, 400, "invalid_multipart")
        assert "truncated" in body_json["error"]["message"]


@pytest.mark.parametrize("path", ["/v1/identify?top_k=1", "/v1/verify?threshold=0.5", "/v1/identify?x="])
def test_query_parameters_on_image_endpoints_are_refused(client, path):
    response = client.post(path, json={"image": "AAAA", "image1": "AAAA", "image2": "AAAA"}, headers=VERIFY)
    assert_error(response, 422, "invalid_request")


def test_every_error_response_in_the_openapi_is_the_envelope(client):
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in json.dumps(spec)
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, status)
    identity_422 = spec["paths"]["/v1/identities/{identity_id}"]["get"]["responses"]["422"]
    assert identity_422["description"] == IDENTITY_INPUT_DESCRIPTION
