"""Memory: 8 concurrent verifies of the largest allowed image keep the server's peak RSS bounded.

A 5 KB single-colour PNG of 40 MP decodes to 160 MB of pixels; eight at once took a server to
1.06 GB. The server decodes large images reduced to the detector's working size, one at a time.
"""

from __future__ import annotations

import math
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from live_server import LiveServer

from facever.app.core.config import Settings

pytestmark = pytest.mark.slow

PEAK_RSS_LIMIT_MIB = 600
CONCURRENT = 8


def single_colour_png(width: int, height: int, colour: tuple[int, ...]) -> bytes:
    """An RGB (or, with four values, RGBA) PNG of one colour, built row by row (never held as pixels)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload)
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = b"\0" + bytes(colour) * width
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    colour_type = 6 if len(colour) == 4 else 2
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


@pytest.mark.parametrize("colour", [(180, 140, 120), (180, 140, 120, 128)], ids=["RGB", "RGBA"])
def test_concurrent_verifies_of_the_largest_allowed_image_keep_peak_rss_bounded(tmp_path, colour):
    side = math.isqrt(Settings().max_image_pixels)  # the largest allowed square image
    image = single_colour_png(side, side, colour)
    # As many inference workers as requests: only the server's own bound on large decodes holds.
    with LiveServer(tmp_path, inference_workers=str(CONCURRENT)) as server:
        before = server.memory_kib("VmRSS")

        def verify(_: int) -> httpx.Response:
            files = {"image1": ("a.png", image, "image/png"), "image2": ("b.png", image, "image/png")}
            return httpx.post(f"{server.url}/v1/verify", files=files, timeout=300)

        with ThreadPoolExecutor(CONCURRENT) as pool:
            responses = list(pool.map(verify, range(CONCURRENT)))
        peak = server.memory_kib("VmHWM")
        after = server.memory_kib("VmRSS")
    print(f"server RSS: {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB, {after / 1024:.0f} after")
    for response in responses:  # decoded in full and searched: no face in one colour
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "no_face"
    assert peak / 1024 < PEAK_RSS_LIMIT_MIB
