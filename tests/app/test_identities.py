"""Identities on SQLite and on PostgreSQL: enroll -> verify against the identity -> identify -> delete,
partial enrollment, persistence across an app restart, and the identity endpoints."""

from __future__ import annotations

import base64

import pytest
from service_samples import ADMIN, VERIFY, files, grey_image, lfw
from sqlalchemy import create_engine, func, select

from facever.app.db.models import Face

BUSH_ENROLL = [("George_W_Bush", n) for n in (1, 2, 3)]
BUSH_PROBE = ("George_W_Bush", 65)
SERENA_ENROLL = [("Serena_Williams", n) for n in (1, 2)]
SERENA_PROBE = ("Serena_Williams", 5)


def create(client, name: str, **extra) -> dict:
    response = client.post("/v1/identities", json={"name": name, **extra}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()


def enroll(client, identity_id: int, images: list[tuple[str, bytes]]):
    return client.post(
        f"/v1/identities/{identity_id}/faces",
        files=[("images", (filename, data)) for filename, data in images],
        headers=ADMIN,
    )


def enroll_lfw(client, identity_id: int, photos) -> dict:
    response = enroll(client, identity_id, [(f"{p}_{n}.jpg", lfw(p, n)) for p, n in photos])
    assert response.status_code == 201, response.text
    return response.json()


def identify(client, photo, **form) -> dict:
    response = client.post("/v1/identify", files=files(image=lfw(*photo)), data=form, headers=VERIFY)
    assert response.status_code == 200, response.text
    return response.json()


def templates_in_database(database_url: str, identity_id: int) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.scalar(
                select(func.count()).select_from(Face).where(Face.identity_id == identity_id)
            )
    finally:
        engine.dispose()


def test_enroll_verify_identify_delete(client, database_url):
    bush = create(client, "George W. Bush", external_id="gwb-43", metadata={"role": "president"})
    assert bush["face_count"] == 0 and bush["metadata"] == {"role": "president"}
    serena = create(client, "Serena Williams")

    # Enrollment with partial success: each image accepted or rejected with its reason.
    images = [(f"bush{n}.jpg", lfw(p, n)) for p, n in BUSH_ENROLL]
    images.insert(1, ("notes.txt", b"not an image"))
    images.append(("wall.png", grey_image()))
    response = enroll(client, bush["id"], images)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["enrolled"], body["rejected"], body["face_count"]) == (3, 2, 3)
    assert [r["accepted"] for r in body["results"]] == [True, False, True, True, False]
    assert body["results"][1]["error"]["code"] == "not_an_image"
    assert body["results"][4]["error"]["code"] == "no_face"
    assert body["results"][1]["filename"] == "notes.txt"
    face_ids = [r["face_id"] for r in body["results"] if r["accepted"]]
    assert len(set(face_ids)) == 3
    enroll_lfw(client, serena["id"], SERENA_ENROLL)

    detail = client.get(f"/v1/identities/{bush['id']}", headers=ADMIN).json()
    assert detail["face_count"] == 3 and sorted(face["id"] for face in detail["faces"]) == sorted(face_ids)

    # Verify a new photo against the identity: same person yes, another person no.
    same = client.post(
        f"/v1/identities/{bush['id']}/verify", files=files(image=lfw(*BUSH_PROBE)), headers=VERIFY
    )
    assert same.status_code == 200, same.text
    assert same.json()["verified"] is True
    assert same.json()["templates_compared"] == 3 and same.json()["best_face_id"] in face_ids
    other = client.post(
        f"/v1/identities/{bush['id']}/verify",
        json={"image": base64.b64encode(lfw(*SERENA_PROBE)).decode()},
        headers=VERIFY,
    )
    assert other.status_code == 200, other.text
    assert other.json()["verified"] is False

    # Identify: the right identity comes first.
    found = identify(client, BUSH_PROBE)
    assert found["matches"] and found["matches"][0]["identity"]["id"] == bush["id"]
    assert all(match["above_threshold"] for match in found["matches"])
    assert found["gallery_size"] >= 5
    assert identify(client, SERENA_PROBE)["matches"][0]["identity"]["id"] == serena["id"]
    everyone = identify(client, BUSH_PROBE, include_below_threshold="true", top_k="10")
    assert {m["identity"]["id"] for m in everyone["matches"]} >= {bush["id"], serena["id"]}
    assert [m["score"] for m in everyone["matches"]] == sorted(
        (m["score"] for m in everyone["matches"]), reverse=True
    )

    # Delete: no template of the identity is left, and identify forgets it at once.
    assert client.delete(f"/v1/identities/{bush['id']}", headers=ADMIN).status_code == 204
    assert templates_in_database(database_url, bush["id"]) == 0
    after = identify(client, BUSH_PROBE, include_below_threshold="true", top_k="100")
    assert bush["id"] not in {m["identity"]["id"] for m in after["matches"]}
    assert after["gallery_size"] == found["gallery_size"] - 3
    assert (
        client.get(f"/v1/identities/{bush['id']}", headers=ADMIN).json()["error"]["code"]
        == "identity_not_found"
    )
    assert client.delete(f"/v1/identities/{bush['id']}", headers=ADMIN).status_code == 404


def test_enrollments_survive_a_restart(database_url, start_app):
    with start_app(database_url) as first:
        powell = create(first, "Colin Powell")
        enroll_lfw(first, powell["id"], [("Colin_Powell", 1), ("Colin_Powell", 2)])
    with start_app(database_url) as second:  # a new process would do the same: load from the database
        detail = second.get(f"/v1/identities/{powell['id']}", headers=ADMIN).json()
        assert detail["name"] == "Colin Powell" and detail["face_count"] == 2
        found = identify(second, ("Colin_Powell", 3), include_below_threshold="true")
        assert found["matches"][0]["identity"]["id"] == powell["id"]


def test_delete_one_face(client, database_url):
    identity = create(client, "Jennifer Aniston")
    enrolled = enroll_lfw(client, identity["id"], [("Jennifer_Aniston", 1), ("Jennifer_Aniston", 2)])
    first, second = (r["face_id"] for r in enrolled["results"])
    assert client.delete(f"/v1/identities/{identity['id']}/faces/{first}", headers=ADMIN).status_code == 204
    assert templates_in_database(database_url, identity["id"]) == 1
    detail = client.get(f"/v1/identities/{identity['id']}", headers=ADMIN).json()
    assert [face["id"] for face in detail["faces"]] == [second]
    again = client.delete(f"/v1/identities/{identity['id']}/faces/{first}", headers=ADMIN)
    assert again.status_code == 404 and again.json()["error"]["code"] == "face_not_found"
    probe = files(image=lfw("Jennifer_Aniston", 3))
    found = client.post("/v1/identify", files=probe, data={"include_below_threshold": "true"}, headers=VERIFY)
    assert all(match["face_id"] != first for match in found.json()["matches"])


def test_unknown_identities_are_404(client):
    missing = 987654321
    probe = files(image=lfw(*BUSH_PROBE))
    for response in (
        client.get(f"/v1/identities/{missing}", headers=ADMIN),
        client.delete(f"/v1/identities/{missing}", headers=ADMIN),
        client.delete(f"/v1/identities/{missing}/faces/1", headers=ADMIN),
        client.post(
            f"/v1/identities/{missing}/faces", files={"images": ("a.jpg", lfw(*BUSH_PROBE))}, headers=ADMIN
        ),
        client.post(f"/v1/identities/{missing}/verify", files=probe, headers=VERIFY),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "identity_not_found"


def test_an_identity_without_faces_cannot_be_verified_against(client):
    empty = create(client, "Nobody Yet")
    response = client.post(
        f"/v1/identities/{empty['id']}/verify", files=files(image=lfw(*BUSH_PROBE)), headers=VERIFY
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_enrolled_faces"


def test_an_enrollment_where_every_image_is_rejected(client):
    identity = create(client, "Rejected")
    response = enroll(client, identity["id"], [("grey.png", grey_image()), ("empty.jpg", b"")])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enrolled"] == 0 and [r["error"]["code"] for r in body["results"]] == [
        "no_face",
        "empty_image",
    ]


def test_enrollment_by_json(client):
    identity = create(client, "Venus Williams")
    payload = {"images": [base64.b64encode(lfw("Venus_Williams", n)).decode() for n in (1, 2)] + ["%%%"]}
    response = client.post(f"/v1/identities/{identity['id']}/faces", json=payload, headers=ADMIN)
    assert response.status_code == 201, response.text
    assert [r["accepted"] for r in response.json()["results"]] == [True, True, False]
    assert response.json()["results"][2]["error"]["code"] == "invalid_base64"


def test_external_ids_are_unique(client):
    create(client, "First", external_id="dup-1")
    response = client.post("/v1/identities", json={"name": "Second", "external_id": "dup-1"}, headers=ADMIN)
    assert response.status_code == 409 and response.json()["error"]["code"] == "external_id_taken"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": "\t\n\u3000"},  # white space of other kinds too
        {"name": "A", "external_id": "  "},
        {"name": "x" * 257},
        {"name": "A", "metadata": [1]},
    ],
)
def test_invalid_identities_are_422(client, body):
    response = client.post("/v1/identities", json=body, headers=ADMIN)
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_request"


def test_identities_are_paged(client):
    created = [create(client, f"Paged {n}")["id"] for n in range(3)]
    first = client.get("/v1/identities", params={"limit": 2}, headers=ADMIN).json()
    assert first["limit"] == 2 and len(first["items"]) == 2 and first["total"] >= 3
    seen = []
    for offset in range(0, first["total"], 2):
        seen += [
            item["id"]
            for item in client.get(
                "/v1/identities", params={"offset": offset, "limit": 2}, headers=ADMIN
            ).json()["items"]
        ]
    assert seen == sorted(seen) and set(created) <= set(seen)
    assert client.get("/v1/identities", params={"limit": 0}, headers=ADMIN).status_code == 422


def test_identify_uses_its_own_stricter_threshold(client, pipeline):
    card = pipeline.card
    assert card.identify_threshold is not None and card.identify_threshold > card.threshold
    serena = create(client, "Serena for identify")
    enroll_lfw(client, serena["id"], SERENA_ENROLL)
    found = identify(client, SERENA_PROBE, include_below_threshold="true", top_k="100")
    assert found["threshold"] == pytest.approx(card.identify_threshold)
    assert all(m["above_threshold"] == (m["score"] >= card.identify_threshold) for m in found["matches"])
    strict = identify(client, SERENA_PROBE, top_k="100")
    assert all(m["score"] >= card.identify_threshold for m in strict["matches"])
    info = client.get("/v1/info", headers=VERIFY).json()
    assert info["threshold"] == pytest.approx(card.threshold)
    assert info["identify_threshold"] == pytest.approx(card.identify_threshold)
    assert "default" in info["shipped_models"] and info["model_source"] == "default"


def test_identities_to_re_enroll_after_a_model_change(client, database_url):
    current = create(client, "Enrolled with the current model")
    enroll_lfw(client, current["id"], SERENA_ENROLL[:1])
    older = create(client, "Enrolled with an older model only")
    empty = create(client, "Never enrolled")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                Face.__table__.insert().values(
                    identity_id=older["id"],
                    model_name="facever",
                    model_version="0.1.0",
                    embedding=b"\0" * 512,
                    detection_score=0.99,
                )
            )
    finally:
        engine.dispose()
    page = client.get("/v1/identities", params={"needs_reenrollment": "true", "limit": 500}, headers=ADMIN)
    assert page.status_code == 200, page.text
    listed = {item["id"]: item for item in page.json()["items"]}
    assert current["id"] not in listed
    assert {older["id"], empty["id"]} <= set(listed)
    assert listed[older["id"]]["face_count"] == 0 and listed[older["id"]]["other_model_face_count"] == 1
    assert page.json()["total"] == len(listed)


def test_identity_verify_and_identify_give_the_calibrated_probability(client, pipeline):
    mapping = pipeline.card.probability
    assert mapping is not None
    bush = create(client, "Bush for probability")
    enroll_lfw(client, bush["id"], BUSH_ENROLL)
    serena = create(client, "Serena for probability")
    enroll_lfw(client, serena["id"], SERENA_ENROLL)
    for photo, expected_high in ((BUSH_PROBE, True), (SERENA_PROBE, False)):
        response = client.post(
            f"/v1/identities/{bush['id']}/verify", files=files(image=lfw(*photo)), headers=VERIFY
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["probability"] == pytest.approx(mapping(body["score"]))
        assert (body["probability"] > 0.5) is expected_high
    found = identify(client, BUSH_PROBE, include_below_threshold="true", top_k="100")
    assert len(found["matches"]) >= 2
    for match in found["matches"]:
        assert match["probability"] == pytest.approx(mapping(match["score"]))
        assert 0 <= match["probability"] <= 1
    # ranked by score, so by probability too (the map is monotone)
    probabilities = [m["probability"] for m in found["matches"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert found["matches"][0]["identity"]["id"] == bush["id"] and probabilities[0] > 0.5
