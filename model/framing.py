"""The chips a face is embedded from: the model card's ``alignment.views``.

* ``landmarks``: the detector's five landmarks moved onto the card's template (model/alignment.py).
* ``dlib-5``: the chip as dlib frames it for its ResNet. The detector's box is mapped to the box dlib's
  HOG detector gives for the same face (the box dlib's 5-point shape predictor was trained on), the
  predictor places its five points in it (model/landmarks.py) and the chip is cut from them as
  ``dlib.get_face_chip`` cuts it. A face turned further than ``max_yaw`` gets the landmarks chip in
  its place: the predictor only ever saw the faces HOG finds, which are near-frontal.

Either chip, where its middle is darker than the card's ``equalise_dark_chips_below``, has its luminance
histogram equalised before the network (``lit``).

With both views the embedding is the normalised sum of the two chips' unit embeddings: on LFW folds
1-4 and their tight and relit copies (bench/views.py) the sum separated people better than either
chip alone, most of all under one-sided light, where the two framings fail on different photos.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facever.model.alignment import align, dlib_face_chip
from facever.model.card import Dlib5Framing, ModelCard
from facever.model.detection import DetectedFace, equalized_luminance
from facever.model.images import LUMA
from facever.model.landmarks import Box, ShapePredictor, intensity


def dlib_box(box: tuple[float, float, float, float], box_map: np.ndarray | list[float]) -> Box:
    """The detector's box (x1, y1, x2, y2) mapped to dlib's box convention (a, b, c, d: the centre moved
    by (a w, b h), the size (c w, d h)), in whole pixels as dlib's rectangle."""
    a, b, c, d = box_map
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    cx, cy = (x1 + x2) / 2 + a * w, (y1 + y2) / 2 + b * h
    return round(cx - c * w / 2), round(cy - d * h / 2), round(cx + c * w / 2), round(cy + d * h / 2)


def middle_luminance(chip: np.ndarray) -> float:
    """Mean luminance (0-255) of the chip's central two thirds each way: the face, not its surround
    (black where the chip reaches past the photo)."""
    side = chip.shape[0]
    middle = chip[side // 6 : side - side // 6, side // 6 : side - side // 6]
    rows, columns = middle.shape[:2]
    # Whole-number sums down the rows first: a tenth of the time of a float mean over the pixels.
    per_channel = middle.reshape(rows, columns * 3).sum(0, dtype=np.uint32).reshape(columns, 3).sum(0)
    return float(per_channel @ LUMA) / (rows * columns)


def lit(chip: np.ndarray, equalise_below: float) -> np.ndarray:
    """The chip, its luminance histogram equalised where its middle is darker than ``equalise_below``:
    under dark, one-sided light the network's embeddings of different people crowd together, and the
    equalised chip separates them again (BENCHMARKS.md, "Dark chips equalised")."""
    if equalise_below > 0 and middle_luminance(chip) < equalise_below:
        return equalized_luminance(chip)
    return chip


def yaw(landmarks: np.ndarray) -> float:
    """How far the head is turned: the nose's offset from the eyes' middle along the eye line, in eye
    distances (0 frontal; LFW's 99th percentile is ~0.43; profiles ~0.5 and more)."""
    left, right, nose = (np.asarray(p, np.float64) for p in landmarks[:3])
    eyes = right - left
    distance = max(float(np.hypot(*eyes)), 1e-6)
    return abs(float((nose - (left + right) / 2) @ eyes)) / distance**2


class Framer:
    """Cuts every view of the card for one face."""

    def __init__(self, card: ModelCard, model_dir: str | Path):
        self.views = list(card.alignment.views)
        self.template = np.asarray(card.alignment.template, np.float64)
        if self.template.shape != (5, 2):
            raise ValueError(f"{model_dir}: the model card's alignment template is not five (x, y) points")
        self.size = card.input.size
        self.equalise_below = card.alignment.equalise_dark_chips_below
        self.dlib_5: Dlib5Framing | None = card.alignment.dlib_5
        self.predictor: ShapePredictor | None = None
        if "dlib-5" in self.views:
            if self.dlib_5 is None:
                raise ValueError(f"{model_dir}: the card asks for the dlib-5 view but has no dlib_5 section")
            self.predictor = ShapePredictor.load(Path(model_dir) / self.dlib_5.shape_predictor)

    def landmarks_chip(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        return lit(align(image, face.landmarks, self.template, self.size), self.equalise_below)

    def dlib_5_chip(self, image: np.ndarray, face: DetectedFace) -> np.ndarray | None:
        """The dlib-5 chip, or None for a face turned beyond the predictor's reach."""
        assert self.dlib_5 is not None and self.predictor is not None
        if yaw(face.landmarks) > self.dlib_5.max_yaw:
            return None
        points = self.predictor.predict(intensity(image), dlib_box(face.box, self.dlib_5.box_map))
        return lit(dlib_face_chip(image, points, self.dlib_5.size, self.dlib_5.padding), self.equalise_below)

    def first_view(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """The S x S x 3 chip of the card's first view alone."""
        if self.views[0] == "dlib-5" and (chip := self.dlib_5_chip(image, face)) is not None:
            return chip
        return self.landmarks_chip(image, face)

    def views_of(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        """(V, S, S, 3) uint8: the card's views of ``face``, in the card's order."""
        chips: dict[str, np.ndarray] = {}
        if "dlib-5" in self.views and (chip := self.dlib_5_chip(image, face)) is not None:
            chips["dlib-5"] = chip
        if "landmarks" in self.views or "dlib-5" not in chips:
            chips["landmarks"] = self.landmarks_chip(image, face)
        return np.stack([chips.get(view, chips["landmarks"]) for view in self.views])
