"""Face landmarks as dlib places them: its shape predictor (Kazemi & Sullivan 2014, a cascade of
regression-tree forests on pixel-intensity differences), run with numpy.

The trees come from dlib's ``shape_predictor_5_face_landmarks.dat``, read by the trainer
(``facever.training.networks.dlib_shape_predictor``) and kept as arrays (``save``/``load``: an .npz
file), so that serving needs neither dlib nor its file. ``predict`` follows dlib's
``shape_predictor::operator()`` (dlib/image_processing/shape_predictor.h) step for step: the same
pixel lookups (a similarity transform from the mean shape to the current one, coordinates rounded
to the nearest pixel, outside the image = 0, intensity = (r + g + b) // 3) and the same tree walk
(left when the difference of the two pixels is above the split's threshold). Only the sum of a
cascade's leaves is taken in float64 where dlib adds them one by one in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

Box = tuple[int, int, int, int]  # dlib's rectangle: left, top, right, bottom, inclusive pixels


@dataclass(frozen=True)
class ShapePredictor:
    initial_shape: np.ndarray  # (P, 2) float32: the mean shape in the box's unit square
    anchors: np.ndarray  # (C, F) int: the landmark each feature pixel is placed from, per cascade
    deltas: np.ndarray  # (C, F, 2) float32: its offset from that landmark, in the mean shape's frame
    split_pixels: np.ndarray  # (C, T, S, 2) int: the two feature pixels each split compares
    thresholds: np.ndarray  # (C, T, S) float32
    leaves: np.ndarray  # (C, T, S + 1, P, 2) float32: shape increments

    @property
    def points(self) -> int:
        return len(self.initial_shape)

    @property
    def depth(self) -> int:
        return int(self.thresholds.shape[2] + 1).bit_length() - 1

    @cached_property
    def _flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per cascade, the splits and leaves of all its trees in one row each, for np.take-like
        indexing by tree * nodes + node."""
        cascades, trees, splits = self.thresholds.shape
        return (
            self.split_pixels[..., 0].reshape(cascades, trees * splits),
            self.split_pixels[..., 1].reshape(cascades, trees * splits),
            self.thresholds.reshape(cascades, trees * splits),
            self.leaves.reshape(cascades, trees * (splits + 1), -1),
        )

    def predict(self, intensity: np.ndarray, box: Box) -> np.ndarray:
        """(P, 2) landmark positions (x, y) in pixels for the face in ``box`` of an HxW uint8
        intensity image; dlib rounds them to whole pixels, this does not."""
        left, top, right, bottom = box
        scale = np.array([right - left, bottom - top], np.float64)
        origin = np.array([left, top], np.float64)
        height, width = intensity.shape
        first, second, thresholds, leaves = self._flat
        trees, splits = self.thresholds.shape[1:]
        offsets = np.arange(trees) * splits
        leaf_offsets = np.arange(trees) * (splits + 1)
        shape = self.initial_shape.astype(np.float32)
        for cascade in range(len(self.anchors)):
            tform = _similarity(self.initial_shape, shape).astype(np.float32)
            placed = self.deltas[cascade] @ tform.T + shape[self.anchors[cascade]]
            pixel = np.floor(placed.astype(np.float64) * scale + origin + 0.5).astype(np.int64)
            x, y = pixel[:, 0], pixel[:, 1]
            inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
            values = np.zeros(len(pixel), np.float32)
            values[inside] = intensity[y[inside], x[inside]]
            node = np.zeros(trees, np.int64)
            for _ in range(self.depth):  # every tree is full, of the same depth
                at = offsets + node
                go_left = values[first[cascade, at]] - values[second[cascade, at]] > thresholds[cascade, at]
                node = 2 * node + 2 - go_left
            step = leaves[cascade, leaf_offsets + node - splits].astype(np.float64).sum(0)
            shape = (shape + step.reshape(-1, 2)).astype(np.float32)
        return shape.astype(np.float64) * scale + origin

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, **{name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def load(cls, path: str | Path) -> ShapePredictor:
        with np.load(path, allow_pickle=False) as arrays:
            return cls(**{name: arrays[name] for name in _FIELDS})


_FIELDS = ("initial_shape", "anchors", "deltas", "split_pixels", "thresholds", "leaves")


def intensity(rgb: np.ndarray) -> np.ndarray:
    """dlib's get_pixel_intensity of an RGB image: (r + g + b) // 3 as uint8."""
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    return (rgb.astype(np.uint16).sum(2) // 3).astype(np.uint8)


def _similarity(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x2 part (rotation and scale) of the least-squares similarity transform from ``source``
    to ``target`` points (Umeyama 1991), as dlib's find_similarity_transform computes it."""
    source = source.astype(np.float64)
    target = target.astype(np.float64)
    source_centred = source - source.mean(0)
    target_centred = target - target.mean(0)
    sigma_source = (source_centred**2).sum() / len(source)
    covariance = target_centred.T @ source_centred / len(source)
    u, d, vt = np.linalg.svd(covariance)
    s = np.eye(2)
    if np.linalg.det(covariance) < 0 or (
        np.linalg.det(covariance) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0
    ):
        if d[1] < d[0]:
            s[1, 1] = -1
        else:
            s[0, 0] = -1
    rotation = u @ s @ vt
    c = 1.0 if sigma_source == 0 else float(np.trace(np.diag(d) @ s)) / sigma_source
    return c * rotation
