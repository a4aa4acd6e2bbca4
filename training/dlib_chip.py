"""Where our MTCNN landmarks fall inside dlib's 150x150 face chip: the alignment template of the
imported dlib ResNet, fitted from data.

dlib's network was trained on chips that dlib cuts with its own 5-point shape predictor
(``get_face_chip_details(shape, 150, padding=0.25)``). The service finds faces with MTCNN, so the
template that reproduces dlib's framing is the mean position of MTCNN's five landmarks inside
dlib's chip, over many LFW faces. ``python -m facever.training.dlib_chip`` refits it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facever.model.detection import FaceDetector
from facever.model.face_choice import choose_face
from facever.model.images import ImageError, read_image
from facever.training.evaluation.lfw import LFW
from facever.training.teacher import models_dir

CHIP_SIZE = 150
CHIP_PADDING = 0.25  # what dlib.face_recognition_model_v1.compute_face_descriptor uses


def mapping_to_chip(details) -> np.ndarray:
    """2x3 affine matrix taking image pixels to chip pixels for a dlib ``chip_details``: the rect's
    corners, rotated by its angle about its centre, go to the chip's corners (dlib's
    get_mapping_to_chip)."""
    rect = details.rect
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(details.angle), np.sin(details.angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    source = (corners - centre) @ rotation.T + centre
    target = np.array([[0, 0], [details.cols - 1, 0], [details.cols - 1, details.rows - 1]], np.float64)
    # Solve target = A @ [source, 1] for the 2x3 matrix A.
    homogeneous = np.hstack([source, np.ones((3, 1))])
    return np.linalg.solve(homogeneous, target).T


def fit(lfw: LFW, count: int = 500, seed: int = 0) -> tuple[np.ndarray, int]:
    """Mean MTCNN landmarks in dlib's chip over ``count`` random LFW images where both find one face."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    shapes = dlib.shape_predictor(str(models_dir() / "shape_predictor_5_face_landmarks.dat"))
    mtcnn = FaceDetector(device="cpu")
    keys = [k for ks in lfw.identities().values() for k in ks]
    rng = np.random.default_rng(seed)
    points: list[np.ndarray] = []
    for key in rng.permutation(keys):
        if len(points) == count:
            break
        rgb = read_image(lfw.path(key))
        rects = list(detector(rgb, 1))
        try:  # one face each, so that both describe the same person
            face = choose_face(mtcnn.detect(rgb), "single")
        except ImageError:
            continue
        if len(rects) != 1:
            continue
        details = dlib.get_face_chip_details(shapes(rgb, rects[0]), CHIP_SIZE, CHIP_PADDING)
        matrix = mapping_to_chip(details)
        points.append(face.landmarks @ matrix[:, :2].T + matrix[:, 2])
    return np.mean(points, axis=0), len(points)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/lfw"))
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    template, used = fit(LFW(args.data), args.count)
    print(f"mean MTCNN landmarks in dlib's {CHIP_SIZE}x{CHIP_SIZE} chip over {used} LFW faces:")
    print(np.array2string(np.round(template, 2), separator=", "))


if __name__ == "__main__":
    main()
