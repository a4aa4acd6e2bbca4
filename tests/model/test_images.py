"""Decoding: pixel limits (also above Pillow's own), and large images reduced while decoded."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from facever.model.images import ImageError, ImageLimits, decode_image, load_image, open_image


def png_bomb(side: int) -> bytes:
    """A 1-bit black PNG of side x side pixels, built without holding its pixels (20000: 49 KB)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)  # filter byte + packed bits
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("side", [7000, 20000])
def test_an_image_bomb_is_too_many_pixels_below_and_above_pillows_own_limit(side):
    data = png_bomb(side)
    assert len(data) < 100_000
    with pytest.raises(ImageError) as error:
        decode_image(data)
    assert error.value.code == "too_many_pixels"
    assert "limit is 40000000" in error.value.message


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_large_image_is_reduced_to_the_working_size_and_keeps_its_original_size(fmt):
    image = Image.new("RGB", (4100, 2050), (200, 120, 40))
    decoded = load_image(open_image(encode(image, fmt)), working_side=800)
    assert (decoded.width, decoded.height) == (4100, 2050)
    height, width = decoded.pixels.shape[:2]
    assert 800 <= width < 1600 and height * 2 == pytest.approx(width, abs=2)
    assert decoded.scale_x == pytest.approx(4100 / width)
    assert np.abs(decoded.pixels.astype(int) - [200, 120, 40]).max() <= 2


@pytest.mark.parametrize("side", [250, 1000, 1599])
def test_images_under_twice_the_working_size_are_decoded_as_they_are(side):
    image = Image.effect_noise((side, side), 50).convert("RGB")
    data = encode(image, "PNG")
    decoded = load_image(open_image(data), working_side=800)
    assert decoded.pixels.shape == (side, side, 3) and decoded.scale_x == 1.0
    np.testing.assert_array_equal(decoded.pixels, decode_image(data))


@pytest.mark.parametrize("mode", ["P", "1", "I;16", "RGBA", "LA"])
def test_every_mode_can_be_reduced(mode):
    image = Image.new("RGB", (3300, 1700), (90, 90, 90)).convert(mode)
    decoded = load_image(open_image(encode(image, "PNG")), working_side=800)
    assert decoded.pixels.shape[:2] == (425, 825) and decoded.pixels.dtype == np.uint8


def test_exif_orientation_is_applied_to_a_reduced_image():
    image = Image.new("RGB", (4000, 2000), (10, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter: 2000 wide, 4000 high
    decoded = load_image(open_image(encode(image, "JPEG", exif=exif)), working_side=800)
    assert (decoded.width, decoded.height) == (2000, 4000)
    assert decoded.pixels.shape[0] > decoded.pixels.shape[1]


def test_the_pixel_limit_is_a_setting_of_the_limits():
    with pytest.raises(ImageError) as error:
        decode_image(encode(Image.new("L", (200, 200)), "PNG"), ImageLimits(max_pixels=100 * 100))
    assert error.value.code == "too_many_pixels"
