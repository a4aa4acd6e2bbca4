"""Image bombs through the service: above Pillow's own limit too, too_many_pixels (not corrupt_image)."""

from __future__ import annotations

import struct
import zlib

import pytest
from service_samples import VERIFY, files, lfw


def png_bomb(side: int) -> bytes:
    """A black 1-bit PNG, side x side pixels, built without its pixels (20000: 49 KB)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + (side + 7) // 8)
    data = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side", [7000, 20000])
def test_an_image_bomb_answers_too_many_pixels(sqlite_client, side):
    bomb = png_bomb(side)
    response = sqlite_client.post(
        "/v1/verify", files=files(image1=bomb, image2=lfw("George_W_Bush", 1)), headers=VERIFY
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "too_many_pixels" and body["request_id"]
    assert body["error"]["message"].startswith("image1: ") and "40000000" in body["error"]["message"]
