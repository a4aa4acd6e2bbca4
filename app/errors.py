"""The one error envelope, ``{"error": {"code", "message"}, "request_id"}``, for every error.

Bad input always ends here as a 4xx with a specific code; a locked or full database is a 503 with a
code and ``Retry-After`` (facever.app.db.errors); only a bug gives 500 ``internal_error``, which ends
the connection and says so (``Connection: close``).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from facever.app.db.errors import retryable
from facever.app.request_id import REQUEST_ID_HEADER, current_request_id, request_id_of
from facever.app.schemas import VALIDATION_CODES
from facever.model.errors import ErrorCode
from facever.model.images import ImageError

log = logging.getLogger("facever.errors")


_HTTP_CODES = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    406: ErrorCode.NOT_ACCEPTABLE,
    413: ErrorCode.REQUEST_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    422: ErrorCode.INVALID_REQUEST,
    429: ErrorCode.TOO_MANY_REQUESTS,
    503: ErrorCode.UNAVAILABLE,
}


class ApiError(Exception):
    def __init__(self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def image_error_status(code: ErrorCode) -> int:
    """Image problems: 413 for the byte limit, 422 for everything else about the content."""
    # ErrorCode(value) is the enum's lookup by value; mypy takes the members' three-field __new__
    # (value, status, description) for the call's signature.
    return ErrorCode(code).status  # type: ignore[call-arg]


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


# FastAPI's answer when a JSON body does not parse for another reason than a syntax error (not UTF-8,
# nested too deeply, an integer too long): made the same 422 invalid_json as a syntax error.
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


# Pydantic's own error types that mean the same as a validator's code.
_VALIDATION_TYPE_CODES = {"string_unicode": ErrorCode.INVALID_CHARACTER}


def invalid_json_message(error: BaseException | str) -> str:
    if isinstance(error, RecursionError):
        return "the body is not valid JSON: it is nested too deeply"
    return f"the body is not valid JSON: {error}"


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "JSON decode error")
            position = error.get("loc", ("body",))[-1]
            message = invalid_json_message(f"{reason} (at {position})")
            return error_response(request, 422, ErrorCode.INVALID_JSON, message)
    # A validator's own error type (schemas.VALIDATION_CODES) is more telling than invalid_request.
    types = [_VALIDATION_TYPE_CODES.get(e.get("type"), e.get("type")) for e in errors]
    code = next((t for t in types if t in VALIDATION_CODES), ErrorCode.INVALID_REQUEST)
    return error_response(request, 422, code, describe_validation_errors(errors))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    headers = getattr(exc, "headers", None)
    if exc.status_code == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
        cause = exc.__cause__ or exc.detail
        return error_response(request, 422, ErrorCode.INVALID_JSON, invalid_json_message(cause))
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(request, exc.status_code, code, str(exc.detail), headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (Starlette names only the first route's).
    Asked of each route with a fresh scope: the request's own carries the route it matched."""
    allowed = []
    for method in _METHODS:
        scope = {
            "type": "http",
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "method": method,
        }
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            allowed.append(method)
    return allowed


async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
    condition = retryable(exc)
    if condition is None:
        return await _unexpected_error(request, exc)
    log.warning("%s %s: %s: %s", request.method, request.url.path, condition.code.value, exc.orig)
    return error_response(
        request, 503, condition.code, condition.message, {"Retry-After": str(condition.retry_after_s)}
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The handler of Exception runs in Starlette's ServerErrorMiddleware, outside RequestIdMiddleware:
    # name the request for the log line explicitly.
    token = current_request_id.set(request_id_of(request.scope))
    try:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
    finally:
        current_request_id.reset(token)
    # ServerErrorMiddleware raises the error again after this answer, and uvicorn then closes the
    # connection: say so, or a keep-alive client sends its next request into a closing socket.
    return error_response(
        request,
        500,
        ErrorCode.INTERNAL_ERROR,
        "an internal error occurred; see the server log",
        {"Connection": "close"},
    )


def describe_validation_errors(errors) -> str:
    """Pydantic's error list -> one readable line: ``body.threshold: Input should be a valid number``."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        parts.append(f"{location}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "the request is invalid"


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking any Exception, though it calls a handler only with the
    # class it is registered for: the narrower handlers below are what it actually gets.
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(ImageError, _image_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DBAPIError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
