"""The error responses each endpoint documents in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from facever.app.schemas import ErrorResponse

_DESCRIPTIONS = {
    400: "Malformed request body (invalid_multipart: unreadable or truncated)",
    401: "Missing or invalid API key (missing_api_key, invalid_api_key)",
    403: "The API key's scope does not allow this (insufficient_scope)",
    404: "Unknown identity or face (identity_not_found, face_not_found)",
    409: "Conflict (external_id_taken, no_enrolled_faces)",
    413: "Image or request too large (image_too_large, request_too_large)",
    415: "Body neither multipart/form-data nor JSON (unsupported_media_type)",
    422: "Bad input: invalid_request (also: query parameters, which these endpoints do not take), "
    "invalid_json, missing_image, invalid_base64, empty_image, "
    "not_an_image, corrupt_image, unsupported_format, too_many_pixels, no_face, multiple_faces, "
    "too_many_images; per enrolled photo also face_too_small, too_blurred, pose_too_far, badly_exposed "
    "(its quality score is below FACEVER_MIN_ENROLL_QUALITY)",
    429: "Too many failed authentications from this address (too_many_failed_auth), or this key is "
    "over FACEVER_KEY_RATE_LIMIT (rate_limited); see the Retry-After header",
    503: "Too many requests waiting for inference (overloaded)",
}

IMAGE_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)

# The 422 of the identity endpoints (not FastAPI's HTTPValidationError: every error is the envelope).
IDENTITY_INPUT_DESCRIPTION = (
    "Bad input: invalid_request (e.g. an id or offset out of range, 1 to 2^63-1), invalid_json, "
    "invalid_character (NUL or an unpaired surrogate in a text), invalid_metadata (nested deeper than 32 "
    "levels, NaN or Infinity), metadata_too_large (over FACEVER_MAX_METADATA_BYTES as JSON)"
)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


IDENTITY_INPUT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": IDENTITY_INPUT_DESCRIPTION}
}
