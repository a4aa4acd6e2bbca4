"""facever's copy of dlib.get_face_chip (model/alignment.dlib_face_chip) against dlib itself, from the
same five points: LFW faces (chips sampled from the photo), the same photos enlarged 3 and 7 times
(dlib first shrinks them through one and two levels of its image pyramid), and greyscale photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from facever.model.alignment import dlib_face_chip
from facever.model.landmarks import intensity
from facever.training.networks.dlib_shape_predictor import read_shape_predictor

dlib = pytest.importorskip("dlib")

FACES = 12


@pytest.fixture(scope="module")
def faces(lfw_root) -> list[tuple[np.ndarray, np.ndarray]]:
    """(RGB photo, five points of facever's shape predictor on dlib's box) for FACES LFW people."""
    detector = dlib.get_frontal_face_detector()
    predictor = read_shape_predictor()
    found = []
    people = sorted(p for p in (lfw_root / "images").iterdir() if p.is_dir())
    for person in people[7::97]:
        rgb = np.asarray(Image.open(sorted(person.glob("*.jpg"))[0]).convert("RGB"))
        boxes = detector(rgb, 0)
        if boxes:
            box = max(boxes, key=lambda b: b.area())
            points = predictor.predict(intensity(rgb), (box.left(), box.top(), box.right(), box.bottom()))
            found.append((rgb, points))
        if len(found) == FACES:
            break
    assert len(found) == FACES
    return found


def dlibs_chip(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    parts = [dlib.point(int(round(x)), int(round(y))) for x, y in points]
    shape = dlib.full_object_detection(dlib.rectangle(0, 0, 10, 10), parts)
    return np.asarray(dlib.get_face_chip(image, shape, size=150, padding=0.25))


def assert_same_chip(image: np.ndarray, points: np.ndarray) -> None:
    ours, theirs = dlib_face_chip(image, points), dlibs_chip(image, points)
    assert ours.shape == theirs.shape == (150, 150, 3) and ours.dtype == np.uint8
    difference = np.abs(ours.astype(int) - theirs.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999, (difference.max(), difference.mean())


def test_chips_equal_dlibs(faces):
    for rgb, points in faces:
        assert_same_chip(rgb, points)


@pytest.mark.parametrize("factor", [3, 7])
def test_chips_of_large_faces_equal_dlibs(faces, factor):
    """Faces over twice (four times) the chip's size go through dlib's pyramid once (twice)."""
    for rgb, points in faces[:4]:
        large = np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] * factor, rgb.shape[0] * factor)))
        assert_same_chip(large, points * factor)


def test_greyscale_chips_equal_dlibs(faces):
    for rgb, points in faces[:4]:
        grey = np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[..., None], 3, axis=2)
        assert_same_chip(grey, points)


def test_the_framing_follows_the_points(faces):
    """Moving the points moves the chip: the parity above is not of two empty or fixed images."""
    rgb, points = faces[0]
    assert dlib_face_chip(rgb, points).std() > 20
    assert not np.array_equal(dlib_face_chip(rgb, points), dlib_face_chip(rgb, points + (6, 0)))
