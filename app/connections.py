"""Connection hardening for ``facever serve``: read timeouts and a connection limit.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but waits for ever for a client
that sends a request slowly: part of a request line, one header a minute, a body a byte at a time.
The HTTP protocol classes here wrap uvicorn's (httptools when installed, else h11) with:

- a header timeout (FACEVER_HEADER_TIMEOUT): from the moment the connection is opened, or the
  previous response was sent, the client has this long to deliver a request's line and headers;
- a body timeout (FACEVER_BODY_TIMEOUT): from the end of the headers, the whole body must have
  arrived within this long;
- a connection limit (FACEVER_MAX_CONNECTIONS): a connection opened while that many are already
  open gets a 503 ``too_many_connections`` (the error envelope, ``Retry-After: 1``) and is closed.

A connection over a timeout is closed without a response. The limits hold per process: each
``facever serve`` worker, and each replica, counts its own connections.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from facever.app.core.config import get_settings
from facever.app.request_id import REQUEST_ID_HEADER
from facever.model.errors import ErrorCode


class ReadTimeouts:
    """Mixin over a uvicorn HTTP protocol; relies on its ``cycle``, ``transport``, ``connections``."""

    cycle: Any
    transport: asyncio.Transport
    connections: set
    loop: asyncio.AbstractEventLoop

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.max_connections = settings.max_connections
        self._seen_cycle: Any = None
        self._phase = "headers"  # headers -> body -> app -> (response sent) headers ...
        self._timer: asyncio.TimerHandle | None = None

    # -- uvicorn's protocol interface -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if self.max_connections and len(self.connections) > self.max_connections:
            self._refuse()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._progress()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing():
            self._cancel()
            return
        if self.cycle is self._seen_cycle:  # no pipelined request has started: wait for the next one
            self._await_headers()
        else:
            self._progress()

    # -- the timers -------------------------------------------------------------------------------

    def _await_headers(self) -> None:
        self._phase = "headers"
        self._arm(self.header_timeout)

    def _progress(self) -> None:
        """After bytes were parsed: did a request's headers, or its body, arrive?"""
        if self.transport.is_closing():
            self._cancel()
            return
        cycle = self.cycle
        if self._phase == "headers" and cycle is not None and cycle is not self._seen_cycle:
            self._seen_cycle = cycle
            if cycle.more_body and not cycle.response_complete:
                self._phase = "body"
                self._arm(self.body_timeout)
            else:
                self._phase = "app"
                self._cancel()
        elif self._phase == "body" and (not cycle.more_body or cycle.response_complete):
            self._phase = "app"
            self._cancel()

    def _arm(self, seconds: float) -> None:
        self._cancel()
        if seconds > 0:
            self._timer = self.loop.call_later(seconds, self._expired)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self._phase in {"headers", "body"} and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self) -> None:
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {
                "error": {
                    "code": ErrorCode.TOO_MANY_CONNECTIONS,
                    "message": f"the server has {self.max_connections} open connections, its limit; "
                    "retry shortly",
                },
                "request_id": request_id,
            }
        ).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "retry-after: 1\r\n"
            f"{REQUEST_ID_HEADER.lower()}: {request_id}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()


class H11WithTimeouts(ReadTimeouts, H11Protocol):
    pass


try:  # uvicorn's "auto" choice: httptools when it is installed, else h11
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsWithTimeouts(ReadTimeouts, HttpToolsProtocol):
        pass

    HardenedHTTPProtocol: type[asyncio.Protocol] = HttpToolsWithTimeouts
except ImportError:
    HardenedHTTPProtocol = H11WithTimeouts
