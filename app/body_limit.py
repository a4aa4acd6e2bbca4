"""Refuses request bodies above FACEVER_MAX_REQUEST_BYTES (413) before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facever.app.errors import ApiError
from facever.model.errors import ErrorCode


class RequestTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(
            413, ErrorCode.REQUEST_TOO_LARGE, f"the request body is larger than the limit of {limit} bytes"
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        declared_too_large = declared is not None and declared.isdigit() and int(declared) > self.max_bytes
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared_too_large:
                raise RequestTooLarge(self.max_bytes)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)
