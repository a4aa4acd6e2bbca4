"""Keys and images for the service tests: real LFW photos read in place, and synthetic images made
in memory (nothing is copied into the repository)."""

from __future__ import annotations

import io
import os
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
LFW = Path(os.environ.get("FACEVER_TEST_LFW", REPO.parent / "shared" / "data" / "lfw"))

ADMIN_KEY = "fvk_test-admin-key-0123456789abcdefghijklmnopqrstuv"
VERIFY_KEY = "fvk_test-verify-key-0123456789abcdefghijklmnopqrstu"
ADMIN = {"X-API-Key": ADMIN_KEY}
VERIFY = {"X-API-Key": VERIFY_KEY}


# -- images ----------------------------------------------------------------------------------------


@cache
def lfw(person: str, number: int) -> bytes:
    """The bytes of one LFW image, read in place (never copied into the repository)."""
    path = LFW / "images" / person / f"{person}_{number:04d}.jpg"
    if not path.is_file():
        pytest.fail(
            f"LFW image {path} is missing: the service tests need ../shared/data/lfw (or FACEVER_TEST_LFW)"
        )
    return path.read_bytes()


def lfw_image(person: str, number: int) -> Image.Image:
    return Image.open(io.BytesIO(lfw(person, number)))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def grey_image(width: int = 250, height: int = 250) -> bytes:
    """A uniform grey picture: a valid image with no face."""
    return encode(Image.fromarray(np.full((height, width), 128, np.uint8)), "PNG")


def side_by_side(first: bytes, second: bytes) -> bytes:
    """Two photos composed into one image: two faces."""
    left, right = Image.open(io.BytesIO(first)), Image.open(io.BytesIO(second))
    canvas = Image.new("L", (left.width + right.width, max(left.height, right.height)), 0)
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return encode(canvas, "JPEG", quality=95)


def files(**images: bytes) -> dict[str, tuple[str, bytes]]:
    return {name: (f"{name}.img", data) for name, data in images.items()}


# A matched pair of pairs.txt (George_W_Bush 7 65), and a man and a woman: obviously different people.
SAME_PERSON = (("George_W_Bush", 7), ("George_W_Bush", 65))
DIFFERENT_PEOPLE = (("George_W_Bush", 7), ("Serena_Williams", 1))


# -- identities through the API --------------------------------------------------------------------


def create(client, name: str, **extra) -> int:
    response = client.post("/v1/identities", json={"name": name, **extra}, headers=ADMIN)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def enroll(client, identity_id: int, photos) -> list[int]:
    response = client.post(
        f"/v1/identities/{identity_id}/faces",
        files=[("images", (f"{p}_{n}.jpg", lfw(p, n))) for p, n in photos],
        headers=ADMIN,
    )
    assert response.status_code == 201, response.text
    assert response.json()["rejected"] == 0, response.text
    return [result["face_id"] for result in response.json()["results"]]
