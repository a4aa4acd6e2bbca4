"""Reading the images of a request: multipart form files or base64 strings in a JSON body.

The image endpoints take either body, so they parse it here rather than through FastAPI's
parameters, and describe both forms in the OpenAPI schema with ``request_body``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from facever.app.analysis import Upload
from facever.app.core.config import Settings
from facever.app.errors import ApiError, describe_validation_errors, invalid_json_message
from facever.model.errors import ErrorCode
from facever.model.images import ImageError

OptionsT = TypeVar("OptionsT", bound=BaseModel)

_BINARY = {"type": "string", "format": "binary"}
_FORM_FIELDS_MAX = 16
_BOUNDARY = re.compile(r'boundary=("[^"]*"|[^;\s]*)', re.IGNORECASE)


@dataclass(frozen=True)
class ImageFields:
    """The image fields of an endpoint: names of single images, or the name of a repeated one."""

    single: tuple[str, ...] = ()
    repeated: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return self.single + ((self.repeated,) if self.repeated else ())


async def read_image_request(
    request: Request,
    fields: ImageFields,
    options_model: type[OptionsT],
    json_model: type[OptionsT],
    settings: Settings,
) -> tuple[list[Upload], OptionsT]:
    """The request's images (in field order; a repeated field's in the order sent) and its options."""
    if request.query_params:
        names = ", ".join(sorted(set(request.query_params.keys())))
        raise ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            f"this endpoint takes no query parameters (got {names}); send the options in the body",
        )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await _read_multipart(request, fields, options_model, settings)
    if content_type == "application/json" or content_type.endswith("+json"):
        return await _read_json(request, fields, json_model, options_model, settings)
    raise ApiError(
        415,
        ErrorCode.UNSUPPORTED_MEDIA_TYPE,
        f"send the images as multipart/form-data (fields {', '.join(fields.names)}) or as application/json "
        f"with base64 strings, not {content_type or 'a body without Content-Type'}",
    )


async def _read_multipart(
    request: Request, fields: ImageFields, options_model: type[OptionsT], settings: Settings
) -> tuple[list[Upload], OptionsT]:
    max_files = settings.max_enroll_images + len(fields.single)
    ending = _ClosingBoundary(request)
    try:
        async with aclosing(request.stream()) as stream:
            parser = _InMemoryMultiPartParser(
                request.headers, stream, max_files=max_files, max_fields=_FORM_FIELDS_MAX
            )
            form = await parser.parse()
    except MultiPartException as exc:  # every problem the multipart parser finds
        if exc.message.startswith("Too many files"):
            raise ApiError(
                422,
                ErrorCode.TOO_MANY_IMAGES,
                f"at most {settings.max_enroll_images} images fit in one request",
            ) from None
        raise ApiError(
            400, ErrorCode.INVALID_MULTIPART, f"the multipart body could not be read: {exc.message}"
        ) from None
    try:
        if not ending.seen:
            raise ApiError(
                400,
                ErrorCode.INVALID_MULTIPART,
                "the multipart body is truncated: it does not end with its closing boundary",
            )
        uploads: list[Upload] = []
        for name in fields.single:
            values = form.getlist(name)
            if len(values) != 1:
                raise _missing(name, "once" if values else None)
            uploads.append(await _file_upload(name, name, values[0]))
        if fields.repeated:
            values = form.getlist(fields.repeated)
            if not values:
                raise _missing(fields.repeated, None)
            _check_count(len(values), settings)
            for index, value in enumerate(values):
                uploads.append(await _file_upload(f"{fields.repeated}[{index}]", fields.repeated, value))
        options = {key: value for key, value in form.multi_items() if key not in fields.names}
        return uploads, _validate(options_model, options)
    finally:
        await form.close()


class _InMemoryMultiPartParser(MultiPartParser):
    """Starlette's parser, keeping every file part in memory: photos are biometric data, and its
    default spools a part over 1 MB to a temporary file on disk. The memory is bounded by the upload
    budget (facever.app.admission), which admits a body before any of it is read."""

    spool_max_size = 0  # SpooledTemporaryFile's max_size: 0 = never roll over to disk


class _ClosingBoundary:
    """Watches the body as the form parser reads it for the closing delimiter ``--boundary--``, which a
    truncated body lacks (the parser itself accepts one, and hands over the parts it got)."""

    def __init__(self, request: Request):
        found = _BOUNDARY.search(request.headers.get("content-type", ""))
        boundary = found.group(1).strip('"') if found else ""
        self.delimiter = b"--" + boundary.encode("latin-1", "replace") + b"--"
        self.seen = False
        self._tail = b""
        stream = request.stream

        async def watched():
            async for chunk in stream():
                if not self.seen:
                    window = self._tail + chunk
                    self.seen = self.delimiter in window
                    self._tail = window[-len(self.delimiter) :]
                yield chunk

        request.stream = watched  # type: ignore[method-assign]


async def _file_upload(label: str, name: str, value: Any) -> Upload:
    if not isinstance(value, UploadFile):
        raise ApiError(422, ErrorCode.MISSING_IMAGE, f"the form field {name} must be a file, not text")
    data = await value.read()
    await value.close()  # frees the parser's copy now rather than when the form is closed
    return Upload(label, value.filename, data)


async def _read_json(
    request: Request,
    fields: ImageFields,
    json_model: type[OptionsT],
    options_model: type[OptionsT],
    settings: Settings,
) -> tuple[list[Upload], OptionsT]:
    try:
        payload = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # a syntax error, not UTF-8, too deep, an integer too long
        raise ApiError(422, ErrorCode.INVALID_JSON, invalid_json_message(exc)) from None
    if not isinstance(payload, dict):
        raise ApiError(422, ErrorCode.INVALID_REQUEST, "the JSON body must be an object")
    for name in fields.single:
        if payload.get(name) is None:
            raise _missing(name, None)
    if fields.repeated:
        images = payload.get(fields.repeated)
        if images is None or images == []:
            raise _missing(fields.repeated, None)
        if isinstance(images, list):
            _check_count(len(images), settings)
    parsed = _validate(json_model, payload)
    uploads = [_base64_upload(name, getattr(parsed, name), settings) for name in fields.single]
    if fields.repeated:
        uploads += [
            _base64_upload(f"{fields.repeated}[{index}]", text, settings)
            for index, text in enumerate(getattr(parsed, fields.repeated))
        ]
    options = options_model.model_validate(parsed.model_dump(exclude=set(fields.names), exclude_unset=True))
    return uploads, options


def _base64_upload(label: str, text: str, settings: Settings) -> Upload:
    if text.startswith("data:") and "," in text:
        text = text.split(",", 1)[1]
    # 4 base64 characters carry 3 bytes: refuse an oversized image before decoding it.
    if len(text) // 4 * 3 > settings.max_image_bytes + 3:
        error = ImageError(
            ErrorCode.IMAGE_TOO_LARGE,
            f"the image is larger than the limit of {settings.max_image_bytes} bytes",
        )
        return Upload(label, None, error=error)
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return Upload(
            label, None, error=ImageError(ErrorCode.INVALID_BASE64, "the image is not valid base64")
        )
    return Upload(label, None, data)


def _validate(model: type[OptionsT], values: dict[str, Any]) -> OptionsT:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ApiError(422, ErrorCode.INVALID_REQUEST, describe_validation_errors(exc.errors())) from None


def _missing(name: str, how: str | None) -> ApiError:
    if how == "once":
        return ApiError(422, ErrorCode.INVALID_REQUEST, f"the field {name} must be given once")
    return ApiError(422, ErrorCode.MISSING_IMAGE, f"the image field {name} is missing")


def _check_count(count: int, settings: Settings) -> None:
    if count > settings.max_enroll_images:
        raise ApiError(
            422,
            ErrorCode.TOO_MANY_IMAGES,
            f"{count} images were sent; at most {settings.max_enroll_images} fit in one request",
        )


def request_body(json_model: type[BaseModel], fields: ImageFields) -> dict[str, Any]:
    """OpenAPI ``requestBody`` for an endpoint taking ``json_model`` as JSON, or as a form with files."""
    json_schema = json_model.model_json_schema()
    form_schema = copy.deepcopy(json_schema)
    form_schema.pop("examples", None)
    form_schema["title"] = form_schema.get("title", "") + "Form"
    for name, prop in form_schema["properties"].items():  # a form field is text: it cannot be null
        variants = [v for v in prop.get("anyOf", ()) if v != {"type": "null"}]
        if "anyOf" in prop and len(variants) == 1:
            del prop["anyOf"]
            prop.update(variants[0])
        if prop.get("default", "") is None:
            del prop["default"]
        form_schema["properties"][name] = prop
    for name in fields.single:
        form_schema["properties"][name] = {**_BINARY, "description": "the image file"}
    if fields.repeated:
        form_schema["properties"][fields.repeated] = {
            "type": "array",
            "items": _BINARY,
            "description": "the image files: repeat the field for each image",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {"schema": form_schema},
                "application/json": {"schema": json_schema},
            },
        }
    }
