import numpy as np
import pytest
from PIL import Image

from facever.model.alignment import align, similarity_transform, template
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.images import read_image

FACES = [
    "Aaron_Eckhart/Aaron_Eckhart_0001",
    "Serena_Williams/Serena_Williams_0003",
    "Colin_Powell/Colin_Powell_0005",
]


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(DetectorConfig(), device="cpu", threads=1)


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.deg2rad(12), 1.7, np.array([5.0, -3.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = np.random.default_rng(0).uniform(0, 100, (5, 2))
    target = source @ (scale * rotation).T + shift
    matrix = similarity_transform(source, target)
    assert np.allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    assert np.allclose(matrix[:, 2], shift, atol=1e-7)


@pytest.mark.parametrize("key", FACES)
def test_alignment_puts_the_eyes_of_a_real_face_on_the_template(key, lfw_image, detector):
    image = read_image(lfw_image(key))
    face = detector.detect(image)[0]
    size = 112
    crop = align(image, face.landmarks, template(size), size)
    assert crop.shape == (size, size, 3)

    # the detected landmarks, carried through the warp, land on the template's eyes
    matrix = similarity_transform(face.landmarks, template(size))
    moved = face.landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(moved[:2] - template(size)[:2]).max() < 3.0

    # and the detector, run again on the aligned crop, finds the eyes where the template has them:
    # their midpoint within 3 px, their distance within 10 % (the detector itself jitters by ~2 px)
    # (aligned with a margin of real surroundings, so that the detector sees a natural picture)
    margin = 56
    wide = align(image, face.landmarks, template(size, pad=margin), size + 2 * margin)
    assert np.array_equal(wide[margin:-margin, margin:-margin], crop)
    eyes = detector.detect(wide)[0].landmarks[:2] - margin
    target = template(size)[:2]
    assert np.abs(eyes.mean(0) - target.mean(0)).max() < 3.0
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(np.linalg.norm(target[1] - target[0]), rel=0.1)


def test_large_photos_are_detected_downscaled_but_reported_in_original_pixels(lfw_image, detector):
    image = read_image(lfw_image(FACES[0]))
    small_face = detector.detect(image)[0]
    big = np.asarray(Image.fromarray(image).resize((2000, 2000), Image.BICUBIC))
    big_face = detector.detect(big)[0]
    # the same face, in original pixels: landmarks within 3 px and box within 8 % of its size (at 250 px)
    assert np.abs(big_face.landmarks / 8 - small_face.landmarks).max() < 3.0
    side = small_face.box[2] - small_face.box[0]
    assert np.abs(np.array(big_face.box) / 8 - np.array(small_face.box)).max() < 0.08 * side


def test_faces_come_largest_first(lfw_image, detector):
    image = read_image(lfw_image(FACES[0]))
    small = np.asarray(Image.fromarray(image).resize((125, 125), Image.BOX))
    canvas = np.full((300, 420, 3), 128, np.uint8)
    canvas[25:275, 0:250] = image
    canvas[100:225, 280:405] = small
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > faces[1].area
    assert faces[0].box[0] < 250 <= faces[1].box[0]


def test_zoom_frames_the_face_tighter_about_the_centre():
    plain, tight = template(96), template(96, zoom=1.25)
    assert np.allclose(plain.mean(0) - 48, (tight.mean(0) - 48) / 1.25)
    eyes = np.linalg.norm(plain[1] - plain[0]), np.linalg.norm(tight[1] - tight[0])
    assert eyes[1] == pytest.approx(eyes[0] * 1.25)
