"""Enrollment refuses a photo with several faces (reason `multiple_faces`, per photo) unless the caller
asks for `largest`; verify and identify keep the service's FACEVER_MULTI_FACE_POLICY (default largest)."""

from __future__ import annotations

import base64

import pytest
from service_samples import ADMIN, VERIFY, files, lfw, side_by_side

TWO_FACES = side_by_side(lfw("Colin_Powell", 1), lfw("Serena_Williams", 2))
ONE_FACE = lfw("Colin_Powell", 2)


@pytest.fixture(scope="module")
def app(sqlite_url, start_app):
    with start_app(sqlite_url) as client:  # the service default: multi_face_policy=largest
        yield client


def new_identity(app) -> int:
    response = app.post("/v1/identities", json={"name": "Colin Powell"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def enroll_multipart(app, identity_id: int, *images: bytes, **form):
    return app.post(
        f"/v1/identities/{identity_id}/faces",
        files=[("images", (f"{n}.jpg", data)) for n, data in enumerate(images)],
        data=form,
        headers=ADMIN,
    )


def enroll_json(app, identity_id: int, *images: bytes, **options):
    payload = {"images": [base64.b64encode(data).decode() for data in images], **options}
    return app.post(f"/v1/identities/{identity_id}/faces", json=payload, headers=ADMIN)


@pytest.mark.parametrize("enroll", [enroll_multipart, enroll_json])
def test_a_multi_face_photo_is_refused_by_default_and_the_others_enrolled(app, enroll):
    identity_id = new_identity(app)
    response = enroll(app, identity_id, TWO_FACES, ONE_FACE)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["enrolled"], body["rejected"], body["face_count"]) == (1, 1, 1)
    refused, accepted = body["results"]
    assert not refused["accepted"] and refused["error"]["code"] == "multiple_faces"
    assert "largest" in refused["error"]["message"]
    assert accepted["accepted"] and accepted["face_id"] is not None


@pytest.mark.parametrize("enroll", [enroll_multipart, enroll_json])
def test_a_multi_face_photo_alone_enrolls_nothing(app, enroll):
    identity_id = new_identity(app)
    response = enroll(app, identity_id, TWO_FACES)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["error"]["code"] == "multiple_faces"
    assert response.json()["face_count"] == 0


@pytest.mark.parametrize("enroll", [enroll_multipart, enroll_json])
def test_largest_when_asked_for_enrolls_the_largest_face(app, enroll):
    identity_id = new_identity(app)
    response = enroll(app, identity_id, TWO_FACES, multi_face_policy="largest")
    assert response.status_code == 201, response.text
    result = response.json()["results"][0]
    assert result["accepted"] and result["face"]["faces_found"] >= 2


def test_single_when_asked_for_refuses_too(app):
    identity_id = new_identity(app)
    response = enroll_multipart(app, identity_id, TWO_FACES, multi_face_policy="single")
    assert response.json()["results"][0]["error"]["code"] == "multiple_faces"


def test_verify_and_identify_keep_the_service_default(app):
    verify = app.post("/v1/verify", files=files(image1=ONE_FACE, image2=TWO_FACES), headers=VERIFY)
    assert verify.status_code == 200, verify.text
    assert verify.json()["faces"][1]["faces_found"] >= 2
    identify = app.post("/v1/identify", files=files(image=TWO_FACES), headers=VERIFY)
    assert identify.status_code == 200, identify.text


def test_the_openapi_says_enrollment_refuses_multi_face_photos(app):
    operation = app.get("/openapi.json").json()["paths"]["/v1/identities/{identity_id}/faces"]["post"]
    assert "multiple_faces" in operation["description"]
