"""Resizing for detection and alignment, with OpenCV (one thread: the images are small, and the
service already runs one request per core)."""

from __future__ import annotations

import cv2
import numpy as np

cv2.setNumThreads(1)


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to (width, height), each output pixel the mean of the pixels it covers.

    OpenCV averages areas quickly for whole-number factors and several times slower for any other (a
    250x250 photo to 75x75: 0.22 ms). So an image at least three times the size with even sides is
    first halved in 2x2 blocks, as often as that holds, and the rest of the way (a factor of 1.5 to 3)
    is averaged over fractional areas: a little more blur than the exact average (bounded in
    tests/model/test_resize.py), at a third of the cost.
    """
    width, height = size
    while (
        (image.shape[1] % width or image.shape[0] % height)  # a whole-number factor is fast as it is
        and image.shape[1] >= 3 * width
        and image.shape[0] >= 3 * height
        and not (image.shape[0] % 2 or image.shape[1] % 2)
    ):
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def warp_affine(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """The side x side image of ``image`` under the 2x3 ``matrix`` (image pixels to output pixels,
    pixel centres at whole numbers), sampled bilinearly, black outside the image."""
    return cv2.warpAffine(
        np.ascontiguousarray(image),
        np.asarray(matrix, np.float64),
        (side, side),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
