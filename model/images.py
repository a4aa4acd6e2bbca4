"""Decoding uploaded or on-disk images into the one pixel format the pipeline uses.

Every image becomes an 8-bit HxWx3 RGB array: the detector and the shipped network see colour. A
grayscale file (the LFW copy is one) becomes three equal channels; a network that takes one channel
gets luma from the runtime (``to_luma``, ITU-R 601-2 as PIL's "L"). EXIF orientation is applied;
palette, alpha, CMYK and 16-bit images are converted, not rejected.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from math import ceil
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facever.model.errors import ErrorCode

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})


class ImageError(ValueError):
    """A bad image, with a machine-readable ``code`` the service maps to a 4xx response."""

    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class DecodedImage:
    """An upload's pixels, possibly reduced for the detector, and the size of the original."""

    pixels: np.ndarray  # HxWx3 uint8 RGB; reduced when the original is much larger than needed
    width: int  # of the original image, as seen (after EXIF orientation)
    height: int

    @property
    def scale_x(self) -> float:
        """Pixels of the original image per pixel of ``pixels``, across (1.0: not reduced)."""
        return self.width / self.pixels.shape[1]

    @property
    def scale_y(self) -> float:
        return self.height / self.pixels.shape[0]


# EXIF orientation -> the transposition that shows the image upright (as ImageOps.exif_transpose).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def open_image(data: bytes, limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Read an image's header (its pixels are not decoded yet) and check it against ``limits``."""
    if not data:
        raise ImageError(ErrorCode.EMPTY_IMAGE, "the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image is {len(data)} bytes; the limit is {limits.max_bytes} bytes",
        )
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError(
            ErrorCode.NOT_AN_IMAGE, "the data is not an image in a format facever reads"
        ) from None
    except Image.DecompressionBombError:
        # Pillow refuses images of more than 2 x Image.MAX_IMAGE_PIXELS before we see their size.
        raise ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"the image has more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels; "
            f"the limit is {limits.max_pixels}",
        ) from None
    except Exception as exc:  # PIL raises many kinds on garbage headers
        raise ImageError(ErrorCode.CORRUPT_IMAGE, f"the image header could not be read: {exc}") from None
    if image.format not in SUPPORTED_FORMATS:
        raise ImageError(
            ErrorCode.UNSUPPORTED_FORMAT,
            f"{image.format} images are not supported; use one of {', '.join(sorted(SUPPORTED_FORMATS))}",
        )
    width, height = image.size
    if width * height > limits.max_pixels:
        raise ImageError(
            ErrorCode.TOO_MANY_PIXELS,
            f"the image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}",
        )
    if width < 1 or height < 1:
        raise ImageError(ErrorCode.CORRUPT_IMAGE, "the image has no pixels")
    return image


def load_image(image: Image.Image, working_side: int | None = None) -> DecodedImage:
    """Decode an image from ``open_image`` into RGB pixels.

    With ``working_side``, an image whose longer side is at least twice that is reduced while it is
    decoded (JPEG: DCT scaling; others: an integer box reduction before any mode conversion), never
    below ``working_side`` on its longer side: a 6300x6300 photo becomes 900x900 instead of
    160 MB of pixels, and a detector working at ``working_side`` sees the same face. Smaller images
    are decoded as they are. ``width``/``height`` are always the original's.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            width, height = image.size
            longer = max(width, height)
            if working_side and longer >= 2 * working_side and image.format in {"JPEG", "MPO"}:
                scale = working_side / longer
                image.draft(image.mode, (max(1, ceil(width * scale)), max(1, ceil(height * scale))))
            image.load()
            orientation = image.getexif().get(0x0112)
            sixteen_bit = image.mode.startswith("I;16")
            if working_side and max(image.size) >= 2 * working_side:
                image = _reduce(image, max(image.size) // working_side)
            if orientation is not None and (transpose := _ORIENTATION.get(orientation)) is not None:
                image = image.transpose(transpose)
                if orientation >= 5:  # a quarter turn: the sides swap
                    width, height = height, width
            return DecodedImage(to_rgb(image, sixteen_bit), width, height)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(ErrorCode.TOO_MANY_PIXELS, "the image decodes to too many pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated", ...).
        raise ImageError(ErrorCode.CORRUPT_IMAGE, f"the image data is truncated or corrupt: {exc}") from None


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """Image.reduce(factor), a band of rows at a time: no full-size copy is made (Image.reduce
    itself converts RGBA and LA to premultiplied alpha first, a second full-size image)."""
    width, height = image.size
    band = factor * 64  # a multiple of the factor: the bands' boxes are the whole image's
    reduced = None
    for top in range(0, height, band):
        piece = _reducible(image.crop((0, top, width, min(height, top + band)))).reduce(factor)
        if reduced is None:
            reduced = Image.new(piece.mode, (ceil(width / factor), ceil(height / factor)))
        reduced.paste(piece, (0, top // factor))
    assert reduced is not None  # the image has at least one row, so the loop ran
    return reduced


def _reducible(image: Image.Image) -> Image.Image:
    """The image in a mode Image.reduce works on (it refuses palettes, 1-bit and 16-bit)."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):
        return image.convert("I")
    return image


def decode_image(
    data: bytes, limits: ImageLimits = ImageLimits(), working_side: int | None = None
) -> np.ndarray:
    """Bytes of an image file -> HxWx3 uint8 RGB array, or ImageError (see ``load_image``)."""
    return load_image(open_image(data, limits), working_side).pixels


def read_image(path: str | Path, limits: ImageLimits = ImageLimits(max_bytes=1 << 40)) -> np.ndarray:
    """A file on disk -> HxWx3 uint8 RGB array (same decoding as uploads)."""
    return decode_image(Path(path).read_bytes(), limits)


def to_rgb(image: Image.Image, sixteen_bit: bool = False) -> np.ndarray:
    """Any PIL mode -> HxWx3 uint8 RGB (transparent parts on white). ``sixteen_bit``: the image was
    16-bit before it was reduced (converted to mode I)."""
    mode = image.mode
    if mode in {"I;16", "I;16L", "I;16B", "I;16N", "I", "F"}:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if sixteen_bit or mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if mode == "1":
        image = image.convert("L")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2 luma weights, as PIL's "L" and "YCbCr"


def to_luma(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 RGB -> (...) uint8 luma, with PIL's "L" weights (ITU-R 601-2)."""
    weights = np.array([19595, 38470, 7471], np.uint32)  # PIL's fixed-point LUMA
    return ((rgb.astype(np.uint32) @ weights + 0x8000) >> 16).astype(np.uint8)
