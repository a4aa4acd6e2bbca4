"""Every kind of bad input gets a 4xx with its own code in the error envelope, never a 500; odd but
valid images (grayscale, CMYK, 16-bit, alpha, EXIF-rotated, colour) are converted, not rejected."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image
from service_samples import (
    ADMIN,
    SAME_PERSON,
    VERIFY,
    encode,
    files,
    grey_image,
    lfw,
    lfw_image,
    side_by_side,
)

MAX_IMAGE_BYTES = 1_000_000
MAX_IMAGE_PIXELS = 4_000_000
MAX_REQUEST_BYTES = 3_000_000
MAX_ENROLL_IMAGES = 3

FACE = lfw(*SAME_PERSON[0])


@pytest.fixture(scope="module")
def app(sqlite_url, start_app):
    with start_app(
        sqlite_url,
        max_image_bytes=MAX_IMAGE_BYTES,
        max_image_pixels=MAX_IMAGE_PIXELS,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_enroll_images=MAX_ENROLL_IMAGES,
    ) as client:
        yield client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert response.headers["X-Request-ID"] == body["request_id"]
    return body


def verify_with(app, second: bytes, **form):
    return app.post("/v1/verify", files=files(image1=FACE, image2=second), data=form, headers=VERIFY)


# -- files that are not usable images ----------------------------------------------------------------


def truncated_jpeg() -> bytes:
    return FACE[: len(FACE) // 2]


def icon() -> bytes:
    return encode(lfw_image(*SAME_PERSON[0]).convert("RGBA").resize((64, 64)), "ICO")


def pdf() -> bytes:
    return b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def oversized_file() -> bytes:
    """A real JPEG followed by padding, over the byte limit."""
    return FACE + b"\0" * MAX_IMAGE_BYTES


def decompression_bomb() -> bytes:
    """A tiny PNG that decodes to 6000 x 6000 = 36 MP, over the pixel limit."""
    return encode(Image.new("1", (6000, 6000)), "PNG")


BAD_IMAGES = {
    "text": (lambda: b"this is not an image at all\n", 422, "not_an_image"),
    "pdf": (pdf, 422, "not_an_image"),
    "empty": (lambda: b"", 422, "empty_image"),
    "truncated_jpeg": (truncated_jpeg, 422, "corrupt_image"),
    "icon": (icon, 422, "unsupported_format"),
    "over_byte_limit": (oversized_file, 413, "image_too_large"),
    "over_pixel_limit": (decompression_bomb, 422, "too_many_pixels"),
    "no_face": (grey_image, 422, "no_face"),
    "long_thin_strip": (lambda: encode(Image.new("L", (3000, 1), 128), "PNG"), 422, "no_face"),
    "tiny": (lambda: encode(Image.new("L", (1, 1), 128), "PNG"), 422, "no_face"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_bad_image_gets_its_code_in_multipart(app, case):
    make, status, code = BAD_IMAGES[case]
    body = assert_error(verify_with(app, make()), status, code)
    assert body["error"]["message"].startswith("image2: ")


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_a_bad_image_gets_its_code_in_json(app, case):
    make, status, code = BAD_IMAGES[case]
    payload = {"image1": base64.b64encode(FACE).decode(), "image2": base64.b64encode(make()).decode()}
    assert_error(app.post("/v1/verify", json=payload, headers=VERIFY), status, code)


def test_more_than_one_face_is_rejected_under_the_single_policy(app):
    two_faces = side_by_side(lfw("Colin_Powell", 1), lfw("Serena_Williams", 2))
    assert_error(verify_with(app, two_faces, multi_face_policy="single"), 422, "multiple_faces")
    largest = verify_with(app, two_faces, multi_face_policy="largest")
    assert largest.status_code == 200, largest.text
    assert largest.json()["faces"][1]["faces_found"] >= 2


def test_the_single_policy_can_be_the_default(sqlite_url, start_app):
    two_faces = side_by_side(lfw("Colin_Powell", 1), lfw("Serena_Williams", 2))
    with start_app(sqlite_url, multi_face_policy="single") as client:
        assert_error(verify_with(client, two_faces), 422, "multiple_faces")
        assert verify_with(client, two_faces, multi_face_policy="largest").status_code == 200


# -- malformed requests --------------------------------------------------------------------------------


def test_invalid_base64(app):
    payload = {"image1": base64.b64encode(FACE).decode(), "image2": "this is *not* base64!"}
    assert_error(app.post("/v1/verify", json=payload, headers=VERIFY), 422, "invalid_base64")


def test_invalid_json(app):
    response = app.post(
        "/v1/verify", content=b'{"image1": ', headers={**VERIFY, "Content-Type": "application/json"}
    )
    assert_error(response, 422, "invalid_json")


@pytest.mark.parametrize("how", ["multipart", "json"])
def test_a_missing_image(app, how):
    if how == "multipart":
        response = app.post("/v1/verify", files=files(image1=FACE), headers=VERIFY)
    else:
        response = app.post("/v1/verify", json={"image1": base64.b64encode(FACE).decode()}, headers=VERIFY)
    assert_error(response, 422, "missing_image")


def test_an_image_field_sent_as_text(app):
    response = app.post("/v1/verify", files=files(image1=FACE), data={"image2": "hello"}, headers=VERIFY)
    assert_error(response, 422, "missing_image")


@pytest.mark.parametrize(
    "form", [{"threshold": "high"}, {"threshold": "1.5"}, {"multi_face_policy": "all"}, {"treshold": "0.5"}]
)
def test_invalid_options(app, form):
    assert_error(verify_with(app, FACE, **form), 422, "invalid_request")


def test_a_multipart_body_without_boundary(app):
    response = app.post(
        "/v1/verify", content=b"--x\r\n", headers={**VERIFY, "Content-Type": "multipart/form-data"}
    )
    assert_error(response, 400, "invalid_multipart")


def test_an_unsupported_content_type(app):
    response = app.post("/v1/verify", content=FACE, headers={**VERIFY, "Content-Type": "image/jpeg"})
    assert_error(response, 415, "unsupported_media_type")


def test_a_request_over_the_body_limit(app):
    response = app.post(
        "/v1/verify",
        files=files(image1=FACE, image2=b"\0" * (MAX_REQUEST_BYTES + 1)),
        headers=VERIFY,
    )
    assert_error(response, 413, "request_too_large")


def test_too_many_images_in_one_enrollment(app):
    identity = app.post("/v1/identities", json={"name": "Many"}, headers=ADMIN).json()
    images = [("images", (f"{i}.jpg", FACE)) for i in range(MAX_ENROLL_IMAGES + 1)]
    response = app.post(f"/v1/identities/{identity['id']}/faces", files=images, headers=ADMIN)
    assert_error(response, 422, "too_many_images")
    payload = {"images": [base64.b64encode(FACE).decode()] * (MAX_ENROLL_IMAGES + 1)}
    assert_error(
        app.post(f"/v1/identities/{identity['id']}/faces", json=payload, headers=ADMIN),
        422,
        "too_many_images",
    )


def test_unknown_routes_and_methods_use_the_envelope(app):
    assert_error(app.get("/v1/nothing-here", headers=VERIFY), 404, "not_found")
    assert_error(app.get("/v1/verify", headers=VERIFY), 405, "method_not_allowed")
    assert_error(app.get("/v1/identities/not-a-number", headers=ADMIN), 422, "invalid_request")


# -- valid images in other pixel formats --------------------------------------------------------------


def exif_rotated() -> tuple[bytes, bytes]:
    """An upright, non-square photo, and the same photo stored on its side with an EXIF orientation
    tag (6: rotate 90 degrees clockwise to display) that puts it upright again."""
    upright = lfw_image(*SAME_PERSON[0]).crop((0, 25, 250, 225))  # 250 x 200
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 200 x 250, face on its side
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(upright, "JPEG", quality=95), encode(stored, "JPEG", quality=95, exif=exif.tobytes())


def sixteen_bit() -> bytes:
    pixels = np.asarray(lfw_image(*SAME_PERSON[0]), np.uint16) * 257
    return encode(Image.fromarray(pixels), "PNG")


def with_alpha() -> bytes:
    image = lfw_image(*SAME_PERSON[0]).convert("RGBA")
    image.putalpha(255)
    return encode(image, "PNG")


CONVERTED = {
    "grayscale_png": lambda: encode(lfw_image(*SAME_PERSON[0]), "PNG"),
    "rgb_jpeg": lambda: encode(lfw_image(*SAME_PERSON[0]).convert("RGB"), "JPEG", quality=95),
    "cmyk_jpeg": lambda: encode(lfw_image(*SAME_PERSON[0]).convert("CMYK"), "JPEG", quality=95),
    "sixteen_bit_png": sixteen_bit,
    "rgba_png": with_alpha,
    "palette_gif": lambda: encode(lfw_image(*SAME_PERSON[0]).convert("P"), "GIF"),
    "webp": lambda: encode(lfw_image(*SAME_PERSON[0]), "WEBP", quality=95),
}


@pytest.mark.parametrize("case", list(CONVERTED))
def test_other_pixel_formats_are_converted(app, case):
    converted = CONVERTED[case]()
    assert Image.open(io.BytesIO(converted)).format in {"PNG", "JPEG", "GIF", "WEBP"}
    response = verify_with(app, converted)
    assert response.status_code == 200, response.text
    # The same photo in another format: the embeddings barely move.
    assert response.json()["score"] > 0.9


def test_exif_orientation_is_applied(app):
    upright, stored_on_its_side = exif_rotated()
    assert Image.open(io.BytesIO(stored_on_its_side)).size == (200, 250)
    response = app.post("/v1/verify", files=files(image1=upright, image2=stored_on_its_side), headers=VERIFY)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["faces"][1]["image_size"] == {"width": 250, "height": 200}
    assert body["faces"][1]["box"] == pytest.approx(body["faces"][0]["box"], abs=3)
    assert body["score"] > 0.9
