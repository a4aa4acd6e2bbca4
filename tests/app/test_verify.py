"""POST /v1/verify with real LFW photos, as multipart and as JSON."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from service_samples import DIFFERENT_PEOPLE, SAME_PERSON, VERIFY, files, lfw

from facever.model.alignment import align, template
from facever.model.detection import LANDMARK_NAMES
from facever.model.images import decode_image


@pytest.fixture(scope="module")
def app(sqlite_client):
    return sqlite_client


def verify(client, first, second, **form):
    return client.post(
        "/v1/verify", files=files(image1=lfw(*first), image2=lfw(*second)), data=form, headers=VERIFY
    )


def test_the_same_person_is_verified(app, pipeline):
    response = verify(app, *SAME_PERSON)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True
    assert body["score"] >= body["threshold"] == pipeline.card.threshold
    assert body["score_type"] == "cosine_similarity"
    assert body["model"] == {"name": pipeline.card.name, "version": pipeline.card.version}


def test_different_people_are_not_verified(app):
    response = verify(app, *DIFFERENT_PEOPLE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is False
    assert body["score"] < body["threshold"]


def test_the_response_describes_each_face(app):
    body = verify(app, *SAME_PERSON).json()
    assert [face["image"] for face in body["faces"]] == ["image1", "image2"]
    for face in body["faces"]:
        x1, y1, x2, y2 = face["box"]
        assert 0 <= x1 < x2 <= 250 and 0 <= y1 < y2 <= 250
        assert face["box_normalized"] == pytest.approx([x1 / 250, y1 / 250, x2 / 250, y2 / 250], abs=1e-3)
        assert list(face["landmarks"]) == list(LANDMARK_NAMES)
        left_eye, right_eye = face["landmarks"]["left_eye"], face["landmarks"]["right_eye"]
        assert x1 < left_eye[0] < right_eye[0] < x2
        assert 0 < face["detection_score"] <= 1
        assert face["faces_found"] >= 1
        assert face["image_size"] == {"width": 250, "height": 250}
    assert set(body["timing_ms"]) >= {"total", "queue", "decode", "detect", "embed"}
    assert body["request_id"]


def test_json_base64_gives_the_same_result_as_multipart(app):
    (first, second) = SAME_PERSON
    payload = {
        "image1": base64.b64encode(lfw(*first)).decode(),
        "image2": "data:image/jpeg;base64," + base64.b64encode(lfw(*second)).decode(),
    }
    by_json = app.post("/v1/verify", json=payload, headers=VERIFY)
    assert by_json.status_code == 200, by_json.text
    assert by_json.json()["score"] == pytest.approx(verify(app, *SAME_PERSON).json()["score"], abs=1e-6)


def test_the_threshold_can_be_overridden(app):
    score = verify(app, *DIFFERENT_PEOPLE).json()["score"]
    lenient = verify(app, *DIFFERENT_PEOPLE, threshold=str(score - 0.01)).json()
    assert lenient["verified"] is True and lenient["threshold"] == pytest.approx(score - 0.01)
    strict = app.post(
        "/v1/verify",
        json={
            "image1": base64.b64encode(lfw(*SAME_PERSON[0])).decode(),
            "image2": base64.b64encode(lfw(*SAME_PERSON[1])).decode(),
            "threshold": 1.0,
        },
        headers=VERIFY,
    ).json()
    assert strict["verified"] is False and strict["threshold"] == 1.0


def test_the_request_id_is_echoed_or_made(app):
    response = verify(app, *SAME_PERSON)
    assert response.headers["X-Request-ID"] == response.json()["request_id"]
    mine = app.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert mine.headers["X-Request-ID"] == "trace-42"
    insane = app.get("/healthz", headers={"X-Request-ID": "not ok\t!" * 30})
    assert insane.headers["X-Request-ID"] != "not ok\t!" * 30


def test_an_already_cropped_face_filling_the_photo_is_found_and_verified(app, pipeline):
    """A tight aligned crop (the face fills all of it) goes through the detector's second pass."""
    photo = lfw(*SAME_PERSON[0])
    image = decode_image(photo)
    face = pipeline.detect(image)[0]
    crop = align(image, face.landmarks, template(112, zoom=1.6), 112)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(crop)).save(buffer, format="PNG")
    response = app.post(
        "/v1/verify", files=files(image1=buffer.getvalue(), image2=lfw(*SAME_PERSON[1])), headers=VERIFY
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["verified"] is True, body["score"]
    assert body["faces"][0]["image_size"] == {"width": 112, "height": 112}


def test_the_answer_gives_the_calibrated_probability_of_the_score(app, pipeline):
    mapping = pipeline.card.probability
    assert mapping is not None
    same, different = verify(app, *SAME_PERSON).json(), verify(app, *DIFFERENT_PEOPLE).json()
    for body in (same, different):
        assert body["probability"] == pytest.approx(mapping(body["score"]))
        assert 0 <= body["probability"] <= 1
    assert same["probability"] > 0.5 > different["probability"]
    # a threshold of the request changes the verdict, never the probability
    lowered = verify(app, *DIFFERENT_PEOPLE, threshold="-1").json()
    assert lowered["verified"] is True and lowered["probability"] == different["probability"]
