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
    (Umeyama 1991; in 2-D its closed form, no reflection). Returns the 2x3 matrix taking source pixel
    coordinates to target ones."""
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(0), target.mean(0)
    (sx, sy), (tx, ty) = (source - source_mean).T, (target - target_mean).T
    spread = sx @ sx + sy @ sy
    # scale * cos and scale * sin of the rotation
    a, b = (sx @ tx + sy @ ty) / spread, (sx @ ty - sy @ tx) / spread
    linear = np.array([[a, -b], [b, a]])
    return np.hstack([linear, (target_mean - linear @ source_mean)[:, None]])


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


# Where dlib's get_face_chip_details places the five points of its 5-point shape predictor, in dlib's
# order (the eye on the image's right: outer, inner corner; the other eye: outer, inner corner; the
# bottom of the nose), in the unit square before padding (dlib/image_transforms/interpolation.h).
DLIB_5_POINT_REFERENCE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ],
    dtype=np.float64,
)


def dlib_face_chip(
    image: np.ndarray, points: np.ndarray, size: int = 150, padding: float = 0.25
) -> np.ndarray:
    """The size x size chip that ``dlib.get_face_chip`` cuts from dlib's five shape-predictor points,
    pixel for pixel (not used by the service: bench/framing.py found no framing rule that wins).

    dlib's steps (get_face_chip_details, then extract_image_chip): the least-squares similarity from
    the padded reference points to the points (rounded to whole pixels, as dlib's predictor returns
    them); a square of size * scale - 1 pixels about the reference's centre; an image pyramid
    (pyramid_down<2>) over a crop of the image while that square is still more than twice the chip;
    bilinear sampling of the level, truncated to integers, and black outside it.
    """
    reference = (padding + DLIB_5_POINT_REFERENCE) / (2 * padding + 1) * size
    chip_to_image = similarity_transform(reference, np.round(np.asarray(points, np.float64)))
    centre = chip_to_image @ np.array([size / 2, size / 2, 1.0])
    scale = float(np.hypot(*chip_to_image[:, 0]))
    angle = float(np.arctan2(chip_to_image[1, 0], chip_to_image[0, 0]))
    half = (size * scale - 1) / 2  # dlib's centered_drect
    rect: tuple[float, ...] = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    pixels = size * size
    # The crop the pyramid is built from: the rotated square, grown by a border that doubles per level.
    grow, down = 2.0, _rect_down(rect)
    while _rect_area(down) > pixels:
        down = _rect_down(down)
        grow = grow * 2 + 2
    corners = np.array(
        [_rotated(centre, (x, y), angle) for x in (rect[0], rect[2]) for y in (rect[1], rect[3])]
    )
    height, width = image.shape[:2]
    left, top = (int(np.floor(max(v - grow, 0) + 0.5)) for v in corners.min(0))
    right = int(np.floor(min(corners[:, 0].max() + grow, width - 1) + 0.5))
    bottom = int(np.floor(min(corners[:, 1].max() + grow, height - 1) + 0.5))
    level_image = image[top : bottom + 1, left : right + 1]
    rect = (rect[0] - left, rect[1] - top, rect[2] - left, rect[3] - top)
    while _rect_area(_rect_down(rect)) > pixels:
        rect = _rect_down(rect)
        level_image = _pyramid_down(level_image)
    middle = ((rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2)
    origin = _rotated(middle, (rect[0], rect[1]), angle)
    along_x = _rotated(middle, (rect[2], rect[1]), angle) - origin
    along_y = _rotated(middle, (rect[0], rect[3]), angle) - origin
    v, u = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    x = origin[0] + u * along_x[0] + v * along_y[0]
    y = origin[1] + u * along_x[1] + v * along_y[1]
    return _bilinear_truncated(level_image, x, y)


def _rect_down(rect: tuple[float, ...]) -> tuple[float, ...]:
    """dlib's pyramid_down<2>::rect_down: p / 2 - (1.25, 0.75) for both corners."""
    left, top, right, bottom = rect
    return (left / 2 - 1.25, top / 2 - 0.75, right / 2 - 1.25, bottom / 2 - 0.75)


def _rect_area(rect: tuple[float, ...]) -> float:
    left, top, right, bottom = rect
    return max(0.0, right - left + 1) * max(0.0, bottom - top + 1)


def _rotated(centre, point, angle: float) -> np.ndarray:
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = point[0] - centre[0], point[1] - centre[1]
    return np.array([cos * x - sin * y + centre[0], sin * x + cos * y + centre[1]])


def _pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>: a 5x5 binomial filter at every other pixel, integer division by 256."""
    pixels = image.astype(np.uint32)
    rows, cols = (image.shape[0] - 3) // 2, (image.shape[1] - 3) // 2
    weights = (1, 4, 6, 4, 1)
    across = np.zeros((pixels.shape[0], cols, *pixels.shape[2:]), np.uint32)
    for k, weight in enumerate(weights):
        across += weight * pixels[:, k : k + 2 * cols : 2]
    both = np.zeros((rows, *across.shape[1:]), np.uint32)
    for k, weight in enumerate(weights):
        both += weight * across[k : k + 2 * rows : 2]
    return np.asarray(both // 256, np.uint8)


def _bilinear_truncated(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """dlib's interpolate_bilinear: 0 where the 2x2 neighbourhood leaves the image, else truncated."""
    height, width = image.shape[:2]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
    x0, y0 = np.clip(x0, 0, max(width - 2, 0)), np.clip(y0, 0, max(height - 2, 0))
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    pixels = image.astype(np.float64).reshape(height, width, -1)
    top = pixels[y0, x0] * (1 - fx) + pixels[y0, x0 + 1] * fx
    bottom = pixels[y0 + 1, x0] * (1 - fx) + pixels[y0 + 1, x0 + 1] * fx
    chip = top * (1 - fy) + bottom * fy
    chip[~inside] = 0
    return chip.astype(np.uint8).reshape(x.shape + image.shape[2:])
