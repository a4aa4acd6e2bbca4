"""Face quality: every face of every answer carries `quality`; enrollment refuses a face below
FACEVER_MIN_ENROLL_QUALITY with the code of its weakest aspect (a tiny face: face_too_small, a blurred
one: too_blurred), while verify and identify report the quality and never refuse for it."""

from __future__ import annotations

import pytest
from alembic import command
from PIL import Image, ImageFilter
from service_samples import ADMIN, VERIFY, encode, files, lfw, lfw_image
from sqlalchemy import create_engine

from facever.app.db.migrate import alembic_config
from facever.app.db.models import Face, Identity

QUALITY_KEYS = {"score", "size", "sharpness", "pose", "exposure", "inter_ocular_px", "box_side_px"}
QUALITY_KEYS |= {"laplacian_ratio", "yaw", "pitch", "brightness", "clipped"}
GOOD = lfw("Colin_Powell", 2)


def tiny_face(person: str, number: int, face_side: int = 40) -> bytes:
    """The photo shrunk so that its face (about 100 px in LFW) is ``face_side`` px, on a 250 px canvas."""
    image = lfw_image(person, number).convert("RGB")
    side = round(image.width * face_side / 100)
    canvas = Image.new("RGB", (250, 250), (128, 128, 128))
    canvas.paste(
        image.resize((side, side), Image.Resampling.BILINEAR), ((250 - side) // 2, (250 - side) // 2)
    )
    return encode(canvas, "PNG")


def blurred(person: str, number: int, radius: float = 6) -> bytes:
    return encode(lfw_image(person, number).convert("RGB").filter(ImageFilter.GaussianBlur(radius)), "JPEG")


TINY = tiny_face("Colin_Powell", 3)
BLURRED = blurred("Colin_Powell", 4)


@pytest.fixture(scope="module")
def app(sqlite_url, start_app):
    with start_app(sqlite_url) as client:
        yield client


def new_identity(app) -> int:
    response = app.post("/v1/identities", json={"name": "Colin Powell"}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def enroll(app, identity_id: int, *images: bytes):
    return app.post(
        f"/v1/identities/{identity_id}/faces",
        files=[("images", (f"{n}.img", data)) for n, data in enumerate(images)],
        headers=ADMIN,
    )


def check_quality(face: dict) -> dict:
    quality = face["quality"]
    assert QUALITY_KEYS <= quality.keys()
    for name in ("score", "size", "sharpness", "pose", "exposure"):
        assert 0 <= quality[name] <= 1, name
    assert quality["score"] == min(quality[name] for name in ("size", "sharpness", "pose", "exposure"))
    return quality


def test_enrollment_refuses_a_tiny_and_a_blurred_face_with_their_codes(app):
    identity_id = new_identity(app)
    response = enroll(app, identity_id, GOOD, TINY, BLURRED)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["enrolled"], body["rejected"], body["face_count"]) == (1, 2, 1)
    good, tiny, blur = body["results"]
    assert good["accepted"] and check_quality(good["face"])["score"] >= 0.5
    assert not tiny["accepted"] and tiny["error"]["code"] == "face_too_small", tiny
    assert "FACEVER_MIN_ENROLL_QUALITY" in tiny["error"]["message"]
    assert not blur["accepted"] and blur["error"]["code"] == "too_blurred", blur


def test_a_refused_photo_alone_enrolls_nothing(app):
    response = enroll(app, new_identity(app), BLURRED)
    assert response.status_code == 200, response.text
    assert response.json()["enrolled"] == 0


def test_verify_reports_the_quality_and_never_refuses_for_it(app):
    response = app.post("/v1/verify", files=files(image1=GOOD, image2=TINY), headers=VERIFY)
    assert response.status_code == 200, response.text
    good, tiny = (check_quality(face) for face in response.json()["faces"])
    assert good["score"] >= 0.5 and good["size"] == 1.0
    assert tiny["size"] < 0.5 and tiny["inter_ocular_px"] < 20
    response = app.post("/v1/verify", files=files(image1=GOOD, image2=BLURRED), headers=VERIFY)
    assert response.status_code == 200, response.text
    assert check_quality(response.json()["faces"][1])["sharpness"] < 0.5


def test_quality_is_in_every_face_of_every_answer(app):
    identity_id = new_identity(app)
    enrolled = enroll(app, identity_id, GOOD).json()
    check_quality(enrolled["results"][0]["face"])
    probe = lfw("Colin_Powell", 1)
    answer = app.post(f"/v1/identities/{identity_id}/verify", files=files(image=probe), headers=VERIFY)
    assert answer.status_code == 200, answer.text
    check_quality(answer.json()["face"])
    answer = app.post("/v1/identify", files=files(image=BLURRED), headers=VERIFY)
    assert answer.status_code == 200, answer.text
    check_quality(answer.json()["face"])
    faces = app.post("/v1/verify", files=files(image1=probe, image2=GOOD), headers=VERIFY).json()["faces"]
    assert len(faces) == 2 and all(check_quality(face) for face in faces)


def test_an_identity_lists_each_face_with_its_quality_and_date(app):
    identity_id = new_identity(app)
    enrolled = enroll(app, identity_id, GOOD, lfw("Colin_Powell", 5)).json()["results"]
    detail = app.get(f"/v1/identities/{identity_id}", headers=ADMIN).json()
    assert [face["id"] for face in detail["faces"]] == [result["face_id"] for result in enrolled]
    for face, result in zip(detail["faces"], enrolled, strict=True):
        assert face["quality"] == result["face"]["quality"]["score"]
        assert face["created_at"] >= detail["created_at"]


def test_faces_enrolled_before_the_quality_was_kept_have_none(database_url, start_app):
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:  # the schema as it was before (revision 0001), with a face
            config = alembic_config(database_url)
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(Identity.__table__.insert().values(id=1, name="Old", metadata={}))
            connection.execute(
                Face.__table__.insert().values(
                    identity_id=1,
                    model_name="facever-dlib",
                    model_version="1.0.0",
                    embedding=b"\0" * 512,
                    detection_score=0.99,
                )
            )
    finally:
        engine.dispose()
    with start_app(database_url) as client:  # migrates to the newest schema
        response = client.get("/v1/identities/1", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert [face["quality"] for face in response.json()["faces"]] == [None]
        assert enroll(client, 1, GOOD).status_code == 201
        faces = client.get("/v1/identities/1", headers=ADMIN).json()["faces"]
        assert faces[0]["quality"] is None and 0.5 <= faces[1]["quality"] <= 1


def test_the_gate_is_a_setting(sqlite_url, start_app):
    with start_app(sqlite_url, min_enroll_quality=0.0) as client:
        response = enroll(client, new_identity(client), BLURRED, TINY)
        assert response.status_code == 201, response.text
        assert response.json()["enrolled"] == 2


def test_the_openapi_documents_the_quality_codes(app):
    schema = app.get("/openapi.json").json()
    enroll_422 = schema["paths"]["/v1/identities/{identity_id}/faces"]["post"]["responses"]["422"]
    for code in ("face_too_small", "too_blurred", "pose_too_far", "badly_exposed"):
        assert code in enroll_422["description"]
    assert "quality" in schema["components"]["schemas"]["FaceOut"]["properties"]
