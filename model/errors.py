"""Every error code the service answers with, in one enum: its HTTP status and a one-line description.

The codes are the strings clients see in ``{"error": {"code": ...}}``; the enum is a ``StrEnum``, so a
member is its string everywhere (JSON, logs, metric labels). ``app/api/responses.py`` writes the OpenAPI
descriptions from it, and ``tests/app/test_error_codes.py`` checks that the code uses no other code.
It lives in model/ because the image decoder (model/images.py) and the face quality gate
(model/quality.py) raise some of them, and model/ does not import app/.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    status: int
    description: str

    def __new__(cls, value: str, status: int, description: str) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        member.description = description
        return member

    # 400
    INVALID_MULTIPART = "invalid_multipart", 400, "the multipart body is unreadable or truncated"
    BAD_REQUEST = "bad_request", 400, "a malformed HTTP request"
    # 401
    MISSING_API_KEY = "missing_api_key", 401, "no API key in the X-API-Key header"
    INVALID_API_KEY = "invalid_api_key", 401, "the API key is not valid"
    UNAUTHORIZED = "unauthorized", 401, "not authenticated"
    # 403
    INSUFFICIENT_SCOPE = "insufficient_scope", 403, "the API key's scope does not allow this"
    FORBIDDEN = "forbidden", 403, "not allowed"
    # 404
    IDENTITY_NOT_FOUND = "identity_not_found", 404, "there is no such identity"
    FACE_NOT_FOUND = "face_not_found", 404, "the identity has no such face"
    NOT_FOUND = "not_found", 404, "no such path"
    # 405, 406
    METHOD_NOT_ALLOWED = "method_not_allowed", 405, "the path does not take this method; see the Allow header"
    NOT_ACCEPTABLE = "not_acceptable", 406, "no acceptable representation"
    # 409
    EXTERNAL_ID_TAKEN = "external_id_taken", 409, "an identity with this external_id exists"
    NO_ENROLLED_FACES = "no_enrolled_faces", 409, "no identity has an enrolled face to search"
    # 413
    IMAGE_TOO_LARGE = "image_too_large", 413, "an image is over FACEVER_MAX_IMAGE_BYTES"
    REQUEST_TOO_LARGE = "request_too_large", 413, "the request body is over FACEVER_MAX_REQUEST_BYTES"
    # 415
    UNSUPPORTED_MEDIA_TYPE = (
        "unsupported_media_type",
        415,
        "the body is neither multipart/form-data nor JSON",
    )
    # 422
    INVALID_REQUEST = (
        "invalid_request",
        422,
        "a field is invalid, e.g. an id or offset out of range 1 to 2^63-1, or any query parameter on the "
        "image endpoints",
    )
    INVALID_JSON = "invalid_json", 422, "the body is not valid JSON: syntax, not UTF-8, nested too deeply"
    INVALID_CHARACTER = "invalid_character", 422, "NUL or an unpaired surrogate in a text"
    INVALID_METADATA = "invalid_metadata", 422, "metadata nested deeper than 32 levels, NaN or Infinity"
    METADATA_TOO_LARGE = "metadata_too_large", 422, "metadata over FACEVER_MAX_METADATA_BYTES as JSON"
    MISSING_IMAGE = "missing_image", 422, "an image field is missing or not a file"
    INVALID_BASE64 = "invalid_base64", 422, "an image is not valid base64"
    EMPTY_IMAGE = "empty_image", 422, "an image is empty, 0 bytes"
    NOT_AN_IMAGE = "not_an_image", 422, "the data is not an image in a format facever reads"
    CORRUPT_IMAGE = "corrupt_image", 422, "the image is truncated or corrupt"
    UNSUPPORTED_FORMAT = "unsupported_format", 422, "an image format facever does not take"
    TOO_MANY_PIXELS = "too_many_pixels", 422, "the image decodes to more than FACEVER_MAX_IMAGE_PIXELS"
    NO_FACE = "no_face", 422, "no face was found in the image"
    MULTIPLE_FACES = "multiple_faces", 422, "more than one face where one is required"
    TOO_MANY_IMAGES = "too_many_images", 422, "more photos than FACEVER_MAX_ENROLL_IMAGES in one request"
    FACE_TOO_SMALL = (
        "face_too_small",
        422,
        "per enrolled photo: its quality is below FACEVER_MIN_ENROLL_QUALITY, the face being too small",
    )
    TOO_BLURRED = "too_blurred", 422, "per enrolled photo: the same, the face being too blurred"
    POSE_TOO_FAR = "pose_too_far", 422, "per enrolled photo: the same, the face turned too far"
    BADLY_EXPOSED = "badly_exposed", 422, "per enrolled photo: the same, the face badly exposed"
    # 429
    TOO_MANY_FAILED_AUTH = (
        "too_many_failed_auth",
        429,
        "too many failed authentications from this address; see Retry-After",
    )
    RATE_LIMITED = "rate_limited", 429, "this key is over FACEVER_KEY_RATE_LIMIT; see Retry-After"
    TOO_MANY_REQUESTS = "too_many_requests", 429, "too many requests"
    # 500
    INTERNAL_ERROR = "internal_error", 500, "a bug: see the server log"
    # 503
    OVERLOADED = "overloaded", 503, "too many requests waiting for inference"
    TOO_MANY_CONNECTIONS = (
        "too_many_connections",
        503,
        "the process has FACEVER_MAX_CONNECTIONS open connections; see Retry-After",
    )
    TOO_MANY_CLIENT_CONNECTIONS = (
        "too_many_client_connections",
        503,
        "this client address has FACEVER_MAX_CONNECTIONS_PER_CLIENT open connections; see Retry-After",
    )
    UPLOADS_BUSY = (
        "uploads_busy",
        503,
        "the request bodies in flight fill FACEVER_UPLOAD_BUDGET_BYTES; see Retry-After",
    )
    UNAVAILABLE = "unavailable", 503, "the service is unavailable"
    DATABASE_BUSY = (
        "database_busy",
        503,
        "another writer held the database's lock for FACEVER_DATABASE_BUSY_TIMEOUT; retry after Retry-After",
    )
    STORAGE_FULL = (
        "storage_full",
        503,
        "the database's disk (or its size limit) is full: nothing was stored; retry once space is freed",
    )
    NOT_READY = (
        "not_ready",
        503,
        "/readyz: the model, the database (reachable and writable) or the gallery is not ready",
    )


def codes_of(status: int) -> list[ErrorCode]:
    """The codes answered with ``status``, in the enum's order."""
    return [code for code in ErrorCode if code.status == status]
