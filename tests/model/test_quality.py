"""model/quality.py: pose from landmarks, sharpness, exposure, the overall score and its reason code."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from facever.model.alignment import DLIB_CHIP_150, TEMPLATE_112, align
from facever.model.detection import DetectedFace, FaceDetector
from facever.model.images import read_image
from facever.model.quality import REASONS, assess, pose


def face_at(landmarks: np.ndarray, side: float = 100.0) -> DetectedFace:
    x, y = landmarks.mean(0)
    box = (x - side / 2, y - side / 2, x + side / 2, y + side / 2)
    return DetectedFace(box=box, landmarks=np.asarray(landmarks, np.float32), score=0.99)


def test_the_template_faces_the_camera():
    yaw, pitch = pose(TEMPLATE_112)
    assert abs(yaw) < 1 and abs(pitch) < 1
    # rotating the whole face in the image plane (roll) changes neither
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    yaw, pitch = pose(TEMPLATE_112 @ rotation.T * 3 + 50)
    assert abs(yaw) < 1 and abs(pitch) < 1


def test_a_nose_off_the_midline_is_a_turned_head():
    turned = TEMPLATE_112.copy()
    turned[2, 0] += 15  # the nose towards the image's right
    yaw, _ = pose(turned)
    assert 30 < yaw < 60
    turned[2, 0] -= 30
    assert pose(turned)[0] < -30
    down = TEMPLATE_112.copy()
    down[2, 1] += 10  # the nose towards the mouth
    assert pose(down)[1] > 20


@pytest.fixture(scope="module")
def photo(lfw_image) -> tuple[np.ndarray, DetectedFace]:
    image = read_image(lfw_image("Colin_Powell/Colin_Powell_0002"))
    faces = FaceDetector().detect(image)
    return image, faces[0]


def crop_of(image: np.ndarray, face: DetectedFace) -> np.ndarray:
    """As the shipped model cuts it (dlib's 150 x 150 chip)."""
    return align(image, face.landmarks, DLIB_CHIP_150, 150)


def test_a_good_photo_passes_and_a_blurred_one_fails_as_blurred(photo):
    image, face = photo
    good = assess(face, crop_of(image, face))
    assert good.score >= 0.5 and good.reason(0.5) is None
    assert good.inter_ocular > 30 and good.box_side > 70
    blurry = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(6)))
    bad = assess(face, crop_of(blurry, face))
    assert bad.sharpness < good.sharpness / 3
    assert bad.reason(0.5) == REASONS["sharpness"] == "too_blurred"
    assert "quality" in bad.describe()


def test_a_dark_crop_is_badly_exposed_and_a_small_face_too_small(photo):
    image, face = photo
    dark = assess(face, (crop_of(image, face) * 0.15).astype(np.uint8))
    assert dark.reason(0.5) == "badly_exposed"
    small = DetectedFace(box=tuple(v / 4 for v in face.box), landmarks=face.landmarks / 4, score=face.score)
    assert assess(small, crop_of(image, face)).reason(0.5) == "face_too_small"


def test_it_takes_well_under_a_millisecond(photo):
    image, face = photo
    crop = crop_of(image, face)
    assess(face, crop)
    start = time.perf_counter()
    for _ in range(100):
        assess(face, crop)
    assert (time.perf_counter() - start) / 100 < 0.005  # < 1 ms typically; loose for a loaded machine
