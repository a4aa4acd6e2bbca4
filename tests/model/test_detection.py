"""Detection recall beyond LFW-like framing: faces that fill the frame and already-cropped faces."""

import numpy as np
import pytest
from PIL import Image

from facever.model.alignment import DLIB_CHIP_150, align, template
from facever.model.detection import DetectorConfig, FaceDetector
from facever.model.images import read_image

KEYS = [
    "Aaron_Eckhart/Aaron_Eckhart_0001",
    "Serena_Williams/Serena_Williams_0003",
    "Tony_Blair/Tony_Blair_0002",
]


@pytest.fixture(scope="module")
def detectors():
    return (
        FaceDetector(DetectorConfig(), device="cpu", threads=1),
        FaceDetector(DetectorConfig(retry_margin=0), device="cpu", threads=1),
    )


def aligned_crops(lfw_image, detector, points, side):
    crops = []
    for key in KEYS:
        image = read_image(lfw_image(key))
        crops.append((align(image, detector.detect(image)[0].landmarks, points, side), points))
    return crops


@pytest.mark.parametrize("layout", ["arcface-112", "arcface-112-tight", "dlib-150"])
def test_an_already_aligned_crop_is_found_with_its_landmarks_in_place(layout, lfw_image, detectors):
    with_retry, first_pass_only = detectors
    points, side = {
        "arcface-112": (template(112), 112),
        "arcface-112-tight": (template(112, zoom=1.6), 112),  # the face fills the whole crop
        "dlib-150": (DLIB_CHIP_150, 150),
    }[layout]
    missed_by_first_pass = 0
    for crop, target in aligned_crops(lfw_image, with_retry, points, side):
        faces = with_retry.detect(crop)
        assert faces, "a face-filling crop must be found"
        # landmarks come back in the crop's own pixels: the eyes where the crop put them
        assert np.abs(faces[0].landmarks[:2] - target[:2]).max() < 0.06 * side
        missed_by_first_pass += not first_pass_only.detect(crop)
    if layout == "arcface-112-tight":
        # MTCNN alone misses a face with no room around it: the framed second pass finds it
        assert missed_by_first_pass == len(KEYS)


def test_a_face_filling_photo_is_found(lfw_image, detectors):
    with_retry, _ = detectors
    image = read_image(lfw_image(KEYS[0]))
    x1, y1, x2, y2 = (int(v) for v in with_retry.detect(image)[0].box)
    close_up = np.asarray(Image.fromarray(image[y1:y2, x1:x2]).resize((400, 400), Image.BICUBIC))
    faces = with_retry.detect(close_up)
    assert len(faces) >= 1
    assert faces[0].box[2] - faces[0].box[0] > 200  # the face is most of the picture


def test_no_face_is_still_no_face(detectors):
    with_retry, _ = detectors
    rng = np.random.default_rng(0)
    assert with_retry.detect(np.full((200, 300, 3), 90, np.uint8)) == []
    assert with_retry.detect(rng.integers(0, 255, (120, 120, 3), dtype=np.uint8)) == []


def test_grey_and_rgb_input_give_the_same_faces(lfw_image, detectors):
    with_retry, _ = detectors
    rgb = read_image(lfw_image(KEYS[1]))
    grey = rgb[:, :, 0].copy()  # the LFW copy is grayscale: R = G = B
    a, b = with_retry.detect(rgb), with_retry.detect(grey)
    assert len(a) == len(b) and np.allclose(a[0].landmarks, b[0].landmarks)
