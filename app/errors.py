"""The one error envelope, ``{"error": {"code", "message"}, "request_id"}``, for every error.

Bad input always ends here as a 4xx with a specific code; only a bug gives 500 ``internal_error``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facever.app.request_id import REQUEST_ID_HEADER, request_id_of
from facever.model.images import ImageError

log = logging.getLogger("facever.errors")

# Image problems: 413 for the byte limit, 422 for everything else about the content.
IMAGE_ERROR_STATUS = {"image_too_large": 413}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def image_error_status(code: str) -> int:
    return IMAGE_ERROR_STATUS.get(code, 422)


def api_error_from_image(error: ImageError, field: str | None = None) -> ApiError:
    message = f"{field}: {error.message}" if field else error.message
    return ApiError(image_error_status(error.code), error.code, message)


def envelope(code: str, message: str, request_id: str) -> dict:
    return {"error": {"code": code, "message": message}, "request_id": request_id}


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    request_id = request_id_of(request.scope)
    return JSONResponse(
        envelope(code, message, request_id),
        status_code=status,
        headers={**(headers or {}), REQUEST_ID_HEADER: request_id},
    )


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(request, exc.status, exc.code, exc.message, exc.headers)


async def _image_error(request: Request, exc: ImageError) -> JSONResponse:
    return error_response(request, image_error_status(exc.code), exc.code, exc.message)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return error_response(request, 422, "invalid_request", describe_validation_errors(exc.errors()))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(request, exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "internal_error", "an internal error occurred; see the server log")


def describe_validation_errors(errors) -> str:
    """Pydantic's error list -> one readable line: ``body.threshold: Input should be a valid number``."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(ImageError, _image_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
