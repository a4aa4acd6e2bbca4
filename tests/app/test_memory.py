"""Memory: 8 concurrent verifies of the largest allowed image keep the server's peak RSS bounded, and
request bodies beyond the upload budget wait, unread, or get 503; a large photo never touches the disk.

A 5 KB single-colour PNG of 40 MP decodes to 160 MB of pixels; eight at once took a server to
1.06 GB. The server decodes large images reduced to the detector's working size, one at a time.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from live_server import LiveServer, closed_by_server
from PIL import Image
from service_samples import VERIFY, encode, files, lfw, lfw_image

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


BUDGET = 1_000_000
UPLOAD = 600_000  # two of these do not fit in BUDGET
WAIT = 3.0


@pytest.fixture(scope="module")
def budget_server(tmp_path_factory):
    with LiveServer(
        tmp_path_factory.mktemp("admission"),
        upload_budget_bytes=str(BUDGET),
        upload_wait_timeout=str(WAIT),
        body_timeout="30",
    ) as server:
        yield server


def upload_head(length: int) -> bytes:
    return (
        "POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def response_of(sock: socket.socket, within: float) -> bytes:
    """The whole response (head and body) read from ``sock``; b"" if none came within ``within`` s."""
    sock.settimeout(within)
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def test_an_upload_beyond_the_budget_gets_503_without_its_body_being_read(budget_server):
    with budget_server.connect() as holder, budget_server.connect() as late:
        holder.sendall(upload_head(UPLOAD) + b"--b\r\n")  # admitted: its body is being read
        time.sleep(0.3)
        start = time.monotonic()
        late.sendall(upload_head(UPLOAD))  # none of its body is ever sent
        response = response_of(late, within=WAIT + 5)
        waited = time.monotonic() - start
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), response[:200]
    assert b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"]["code"] == "uploads_busy"
    assert waited >= WAIT - 0.3  # it waited for room before giving up


def test_an_upload_waits_for_room_and_is_then_read(budget_server):
    with budget_server.connect() as holder, budget_server.connect() as waiting:
        holder.sendall(upload_head(UPLOAD) + b"--b\r\n")
        time.sleep(0.3)
        # The whole body, sent at once: a server that reads it answers at once (400, not a multipart).
        sender = threading.Thread(target=waiting.sendall, args=(upload_head(UPLOAD) + b"x" * UPLOAD,))
        sender.start()
        assert response_of(waiting, within=1.0) == b""  # not read while the budget is full
        holder.close()  # its reservation is given back
        response = response_of(waiting, within=WAIT)
        sender.join()
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert json.loads(response.partition(b"\r\n\r\n")[2])["error"]["code"] == "invalid_multipart"


def test_a_photo_over_1_mb_is_kept_in_memory_not_spooled_to_disk(sqlite_client, monkeypatch):
    """Starlette's multipart parser writes a file part over 1 MB to a temporary file (rollover)."""
    from tempfile import SpooledTemporaryFile

    rollovers = []
    monkeypatch.setattr(SpooledTemporaryFile, "rollover", lambda self: rollovers.append(self))
    face = lfw_image("George_W_Bush", 1).convert("RGB").resize((1200, 1200), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(0).normal(0, 12, (1200, 1200, 3))
    photo = encode(Image.fromarray(np.clip(np.asarray(face) + noise, 0, 255).astype(np.uint8)), "PNG")
    assert len(photo) > 1024 * 1024
    response = sqlite_client.post(
        "/v1/verify", files=files(image1=photo, image2=lfw("George_W_Bush", 2)), headers=VERIFY
    )
    assert response.status_code == 200, response.text
    assert rollovers == []


def test_the_wait_for_admission_does_not_count_in_the_body_timeout(tmp_path):
    body_timeout = 2.0
    with LiveServer(
        tmp_path, upload_budget_bytes=str(BUDGET), upload_wait_timeout="10", body_timeout=str(body_timeout)
    ) as server:
        with server.connect() as first, server.connect() as second:
            first.sendall(upload_head(UPLOAD) + b"--b\r\n")  # admitted; cut off after the body timeout
            time.sleep(0.3)
            start = time.monotonic()
            second.sendall(upload_head(UPLOAD) + b"--b\r\n")  # admitted only when `first` is cut off
            assert closed_by_server(second, within=3 * body_timeout + 3)
            held = time.monotonic() - start
    # about 1.7 s waiting, then the whole body timeout from admission (not 1.7 s from the headers)
    assert held >= body_timeout + 1.2, held
