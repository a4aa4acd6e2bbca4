"""The audit trail (issue 19, point 2): each verify, identity verify, identify, identity creation,
enrollment and deletion leaves exactly one record, with the key that made it, the decision, score,
threshold, model and request id; GET /v1/audit filters and pages them; nothing in the API changes them,
and the database refuses to; the retention setting deletes old ones."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import make_settings
from service_samples import ADMIN, ADMIN_KEY, VERIFY, create, grey_image, lfw
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from facever.app import crud, retention
from facever.app.core import security
from facever.app.db.models import AuditIdentity, AuditRecord


@pytest.fixture(scope="module")
def kiosk(client) -> tuple[int, dict[str, str]]:
    """A key stored in the database (id and name), with scope verify."""
    with client.app.state.service.database.sessions() as session:
        row, key = crud.create_api_key(session, "verify", "kiosk-3")
    return row.id, {"X-API-Key": key}


def every_record(client, **filters) -> list[dict]:
    """All records matching the filters, newest first, read a page at a time."""
    records: list[dict] = []
    before = None
    while True:
        params = {**filters, "limit": 7, **({"before_id": before} if before else {})}
        response = client.get("/v1/audit", params=params, headers=ADMIN)
        assert response.status_code == 200, response.text
        page = response.json()
        records += page["items"]
        before = page["next_before_id"]
        if before is None:
            return records


def call(client, method: str, path: str, headers: dict, **kwargs):
    """The request, sent with a fresh request id, and the audit records that carry that id."""
    request_id = uuid.uuid4().hex
    response = client.request(method, path, headers={**headers, "X-Request-ID": request_id}, **kwargs)
    return response, [r for r in every_record(client) if r["request_id"] == request_id]


def one(client, method: str, path: str, headers: dict, **kwargs) -> tuple[dict, dict]:
    """Call, check that exactly one record was added (and that it is the call's), return both."""
    before = len(every_record(client))
    response, records = call(client, method, path, headers, **kwargs)
    assert response.status_code < 300, response.text
    assert len(records) == 1, records
    assert len(every_record(client)) == before + 1
    body = response.json() if response.content else {}
    return body, records[0]


def image(person: str, number: int) -> dict:
    return {"image": (f"{person}.jpg", lfw(person, number))}


ADMIN_NAME = f"FACEVER_API_KEYS_ADMIN {security.display_prefix(ADMIN_KEY)}..."


def test_every_operation_leaves_exactly_one_record(client, kiosk):
    kiosk_id, kiosk_headers = kiosk
    model = client.get("/v1/info", headers=ADMIN).json()["model"]

    body, record = one(client, "POST", "/v1/identities", ADMIN, json={"name": "Serena Williams"})
    serena = body["id"]
    assert record["operation"] == "create_identity" and record["identity_ids"] == [serena]
    assert record["api_key_id"] is None and record["api_key_name"] == ADMIN_NAME
    assert record["decision"] == "created"

    photos = [("images", ("s1.jpg", lfw("Serena_Williams", 1))), ("images", ("grey.png", grey_image()))]
    photos.append(("images", ("s2.jpg", lfw("Serena_Williams", 2))))
    body, record = one(client, "POST", f"/v1/identities/{serena}/faces", ADMIN, files=photos)
    face_ids = [r["face_id"] for r in body["results"] if r["accepted"]]
    assert record["operation"] == "enroll" and record["decision"] == "enrolled"
    assert record["identity_ids"] == [serena]
    assert record["detail"] == {"enrolled": 2, "rejected": ["no_face"], "face_ids": face_ids}
    assert record["model"]["name"] == model["name"] and record["model"]["version"] == model["version"]

    grey = [("images", ("grey.png", grey_image()))]
    body, record = one(client, "POST", f"/v1/identities/{serena}/faces", ADMIN, files=grey)
    assert body["enrolled"] == 0 and record["decision"] == "rejected"

    two = {"image1": ("a.jpg", lfw("Serena_Williams", 3)), "image2": ("b.jpg", lfw("Serena_Williams", 4))}
    body, record = one(client, "POST", "/v1/verify", kiosk_headers, files=two)
    assert record["operation"] == "verify" and record["identity_ids"] == []
    assert record["api_key_id"] == kiosk_id and record["api_key_name"] == "kiosk-3"
    assert record["decision"] == ("match" if body["verified"] else "no_match")
    assert record["score"] == pytest.approx(body["score"]) and record["threshold"] == body["threshold"]
    assert record["model"]["version"] == body["model"]["version"] == model["version"]

    probe = image("Serena_Williams", 5)
    body, record = one(client, "POST", f"/v1/identities/{serena}/verify", VERIFY, files=probe)
    assert record["operation"] == "identity_verify" and record["identity_ids"] == [serena]
    assert body["verified"] is True and record["decision"] == "match"
    assert record["score"] == pytest.approx(body["score"]) and record["threshold"] == body["threshold"]
    assert record["detail"]["best_face_id"] == body["best_face_id"]

    body, record = one(client, "POST", "/v1/identify", VERIFY, files=probe)
    assert record["operation"] == "identify" and record["decision"] == "match"
    assert record["identity_ids"] == [m["identity"]["id"] for m in body["matches"]]
    assert serena in record["detail"]["above_threshold"]
    assert (
        record["score"] == pytest.approx(body["matches"][0]["score"])
        and record["threshold"] == body["threshold"]
    )

    body, record = one(client, "DELETE", f"/v1/identities/{serena}/faces/{face_ids[0]}", ADMIN)
    assert record["operation"] == "delete_face" and record["identity_ids"] == [serena]
    assert record["detail"] == {"face_id": face_ids[0]} and record["decision"] == "deleted"

    body, record = one(client, "DELETE", f"/v1/identities/{serena}", ADMIN)
    assert record["operation"] == "delete_identity" and record["identity_ids"] == [serena]
    assert record["detail"] == {"templates_erased": 1}

    # A refused request decided nothing and changed nothing: no record.
    for method, path, kwargs in [
        ("DELETE", f"/v1/identities/{serena}", {}),
        (
            "POST",
            "/v1/verify",
            {"files": {"image1": ("g.png", grey_image()), "image2": ("h.png", grey_image())}},
        ),
        ("POST", "/v1/identify", {"files": {"image": ("g.png", grey_image())}}),
    ]:
        response, records = call(client, method, path, ADMIN, **kwargs)
        assert response.status_code >= 400 and records == []


def test_filters_and_paging(client, kiosk):
    kiosk_id, kiosk_headers = kiosk
    started = datetime.now(UTC)
    bush = create(client, "George W. Bush")
    client.post(
        f"/v1/identities/{bush}/faces", files=[("images", ("b.jpg", lfw("George_W_Bush", 1)))], headers=ADMIN
    )
    for _ in range(2):
        response = client.post("/v1/identify", files=image("George_W_Bush", 2), headers=kiosk_headers)
        assert response.status_code == 200
    ended = datetime.now(UTC)

    everything = every_record(client)
    ids = [r["id"] for r in everything]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)  # newest first, each once
    window = {"since": started.isoformat(), "until": ended.isoformat()}
    recent = every_record(client, **window)
    assert [r["operation"] for r in recent] == ["identify", "identify", "enroll", "create_identity"]
    assert every_record(client, since=ended.isoformat()) == []
    # The same window written in another time zone is the same window (SQLite compares times as text).
    india = timezone(timedelta(hours=5, minutes=30))
    shifted = {"since": started.astimezone(india).isoformat(), "until": ended.astimezone(india).isoformat()}
    assert every_record(client, **shifted) == recent

    involving = every_record(client, identity_id=bush)
    assert [r["operation"] for r in involving] == ["identify", "identify", "enroll", "create_identity"]
    assert all(bush in r["identity_ids"] for r in involving)
    identifies = every_record(client, operation="identify")
    assert identifies and all(r["operation"] == "identify" for r in identifies)
    assert len(identifies) == sum(r["operation"] == "identify" for r in everything)
    by_kiosk = every_record(client, api_key_id=kiosk_id)
    assert by_kiosk and all(r["api_key_id"] == kiosk_id for r in by_kiosk)
    assert every_record(client, api_key_name="kiosk-3") == by_kiosk
    assert every_record(client, api_key_id=kiosk_id, operation="identify", **window) == recent[:2]

    page = client.get("/v1/audit", params={"limit": 1}, headers=ADMIN).json()
    assert [r["id"] for r in page["items"]] == ids[:1] and page["next_before_id"] == ids[0]

    for bad in (
        {"operation": "update"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no time zone
        {"since": "9999-12-31T23:59:59-14:00"},  # past the year 9999 in UTC
        {"limit": 0},
    ):
        response = client.get("/v1/audit", params=bad, headers=ADMIN)
        assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request", bad
    assert client.get("/v1/audit", headers=VERIFY).status_code == 403


def test_records_cannot_be_altered_through_the_api(client):
    create(client, "Someone")
    before = every_record(client)
    newest = before[0]["id"]
    for method in ("PUT", "PATCH", "DELETE", "POST"):
        for path in ("/v1/audit", f"/v1/audit/{newest}"):
            response = client.request(method, path, headers=ADMIN, json={"decision": "match"})
            assert response.status_code in (404, 405), (method, path, response.status_code)
    assert client.get(f"/v1/audit/{newest}", headers=ADMIN).status_code == 404
    assert every_record(client) == before

    # Below the API, the database refuses changes too.
    engine = client.app.state.service.database.engine
    for statement in (
        "UPDATE audit_records SET decision = 'match' WHERE id = :id",
        "UPDATE audit_identities SET identity_id = 1 WHERE audit_id = :id",
    ):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text(statement), {"id": newest})
    assert every_record(client) == before


def test_no_column_can_hold_an_image_or_a_template(client):
    columns = inspect(client.app.state.service.database.engine).get_columns("audit_records")
    assert {c["name"] for c in columns} == {
        "id", "at", "operation", "api_key_id", "api_key_name", "identity_ids", "decision", "score",
        "threshold", "model_name", "model_version", "request_id", "detail",
    }  # fmt: skip


def test_retention_deletes_only_old_records(client, database_url):
    database = client.app.state.service.database
    with database.sessions() as session:  # written 40 days ago (records are never updated)
        record = AuditRecord(
            at=datetime.now(UTC) - timedelta(days=40),
            operation="identify",
            api_key_name="old",
            identity_ids=[],
        )
        session.add(record)
        session.flush()
        session.add(AuditIdentity(audit_id=record.id, identity_id=424242))
        session.commit()
        old_id = record.id
    assert every_record(client, identity_id=424242)[0]["id"] == old_id
    count = len(every_record(client))

    result = retention.sweep(make_settings(database_url, audit_retention_days=30), database)
    assert result.deleted_audit_records == 1
    assert every_record(client, identity_id=424242) == []
    assert len(every_record(client)) == count - 1
    with database.sessions() as session:
        left = session.execute(text("SELECT count(*) FROM audit_identities WHERE identity_id = 424242"))
        assert left.scalar() == 0
    assert retention.sweep(make_settings(database_url), database).deleted_audit_records == 0  # 0 = keep


def test_identity_ids_are_never_reused(client):
    """Records name identities by id: a new identity never takes the id of a deleted one (SQLite gave
    the newest id again before the migration 0002 made the table AUTOINCREMENT)."""
    newest = create(client, "Newest")
    assert client.delete(f"/v1/identities/{newest}", headers=ADMIN).status_code == 204
    assert create(client, "Next") > newest
