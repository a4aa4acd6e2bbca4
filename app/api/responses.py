"""The error responses each endpoint documents in the OpenAPI schema, written from the one list of error
codes (facever.model.errors.ErrorCode): each status's description names every code answered with it."""

from __future__ import annotations

from typing import Any

from facever.app.schemas import ErrorResponse
from facever.model.errors import ErrorCode, codes_of

_HEADINGS = {
    400: "Malformed request",
    401: "Missing or invalid API key",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Image or request too large",
    415: "Unsupported media type",
    422: "Bad input",
    429: "Too many requests",
    500: "Internal error",
    503: "Overloaded or unavailable for a while",
}


# Codes that only one endpoint answers with, described there (not in every endpoint's list).
OWN_ENDPOINT_CODES = {ErrorCode.NOT_READY}


def describe(status: int, codes: list[ErrorCode] | None = None, heading: str | None = None) -> str:
    """``status``'s heading and its codes (all but OWN_ENDPOINT_CODES unless ``codes``), each with its
    description."""
    listed = [c for c in codes_of(status) if c not in OWN_ENDPOINT_CODES] if codes is None else codes
    return f"{heading or _HEADINGS[status]}: " + "; ".join(
        f"{code.value} ({code.description})" for code in listed
    )


_DESCRIPTIONS = {status: describe(status) for status in sorted({code.status for code in ErrorCode})}

IMAGE_ERRORS = (400, 401, 403, 413, 415, 422, 429, 503)

# The 422 of the identity endpoints (not FastAPI's HTTPValidationError: every error is the envelope).
IDENTITY_INPUT_CODES = [
    ErrorCode.INVALID_REQUEST,
    ErrorCode.INVALID_JSON,
    ErrorCode.INVALID_CHARACTER,
    ErrorCode.INVALID_METADATA,
    ErrorCode.METADATA_TOO_LARGE,
]
IDENTITY_INPUT_DESCRIPTION = describe(422, IDENTITY_INPUT_CODES)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": _DESCRIPTIONS[status]} for status in statuses}


IDENTITY_INPUT_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": IDENTITY_INPUT_DESCRIPTION}
}
