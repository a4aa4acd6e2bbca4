"""Alignment: a similarity transform that maps five detected landmarks onto a fixed template."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Eye centres, nose tip and mouth corners in a 112x112 crop (the widely used ArcFace layout).
TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


# Where MTCNN's five landmarks fall, on average, in the 150x150 chip that dlib cuts for its face
# ResNet (get_face_chip_details, padding 0.25): fitted over 1,000 LFW faces by
# ``python -m facever.training.dlib_chip --count 1000``. Cropping with it reproduces dlib's framing.
DLIB_CHIP_150 = np.array(
    [[46.08, 44.35], [100.75, 44.15], [73.06, 75.95], [49.42, 104.0], [97.16, 104.0]], dtype=np.float64
)


def template(size: int, pad: int = 0, zoom: float = 1.0) -> np.ndarray:
    """The five template points for a size x size crop, shifted by ``pad`` for a crop with a margin.

    ``zoom`` > 1 frames the face more tightly (the points spread about the crop's centre).
    """
    return ((TEMPLATE_112 - 56.0) * zoom + 56.0) * (size / 112.0) + pad


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking ``source`` points onto ``target``
    (Umeyama 1991). Returns the 2x3 matrix taking source pixel coordinates to target ones."""
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(0), target.mean(0)
    source_c, target_c = source - source_mean, target - target_mean
    covariance = target_c.T @ source_c / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1  # a reflection is never a valid face alignment
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / source_c.var(0).sum()
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align(image: np.ndarray, landmarks: np.ndarray, points: np.ndarray, side: int) -> np.ndarray:
    """Warp ``image`` so that ``landmarks`` land on the template ``points``; returns a side x side crop."""
    landmarks = np.asarray(landmarks, np.float64)
    picture = Image.fromarray(image)
    matrix = similarity_transform(landmarks, points)
    scale = float(np.hypot(*matrix[:, 0]))
    if scale < 0.5:
        # Bilinear sampling does not anti-alias: shrink large faces with a box filter first.
        factor = 2.0 * scale
        width, height = picture.size
        shrunk = (max(1, round(width * factor)), max(1, round(height * factor)))
        picture = picture.resize(shrunk, Image.Resampling.BOX)
        landmarks = (landmarks + 0.5) * (np.array(shrunk) / (width, height)) - 0.5
        matrix = similarity_transform(landmarks, points)
    return np.asarray(
        picture.transform(
            (side, side), Image.Transform.AFFINE, _pil_affine(matrix), resample=Image.Resampling.BILINEAR
        )
    )


def _pil_affine(matrix: np.ndarray) -> tuple[float, ...]:
    """PIL's AFFINE data maps output to input with pixel centres at +0.5; ours maps input to output
    with centres at integers. Invert, and move between the two conventions."""
    inverse = np.linalg.inv(np.vstack([matrix, [0.0, 0.0, 1.0]]))[:2]
    (a, b, c), (d, e, f) = inverse
    return (a, b, c + 0.5 - 0.5 * (a + b), d, e, f + 0.5 - 0.5 * (d + e))
