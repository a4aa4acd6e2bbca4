"""Connection hardening for ``facever serve``: read timeouts and a connection limit.

uvicorn closes an idle keep-alive connection (``timeout_keep_alive``) but waits for ever for a client
that sends a request slowly: part of a request line, one header a minute, a body a byte at a time.
The HTTP protocol classes here wrap uvicorn's (httptools when installed, else h11) with:

- a header timeout (FACEVER_HEADER_TIMEOUT): from the moment the connection is opened, or the
  previous response was sent, the client has this long to deliver a request's line and headers;
- a body timeout (FACEVER_BODY_TIMEOUT): from the end of the headers, the whole body must have
  arrived within this long; a request that waits for admission (facever.app.admission) is not
  reading its body meanwhile, and the body timeout counts from its admission instead;
- a connection limit (FACEVER_MAX_CONNECTIONS): a connection opened while that many are already
  open gets a 503 ``too_many_connections`` (the error envelope, ``Retry-After: 1``) and is closed;
- a limit per client address (FACEVER_MAX_CONNECTIONS_PER_CLIENT): a connection from an address that
  already holds that many gets a 503 ``too_many_client_connections``, so that one client holding idle
  connections cannot take them all. The address is the TCP peer's (a connection exists before any
  header could name another); a reverse proxy listed in FACEVER_TRUSTED_PROXIES carries many clients
  and is held only to the process's limit.

A connection over a timeout is closed without a response. The limits hold per process: each
``facever serve`` worker, and each replica, counts its own connections.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import uuid
from collections import Counter
from contextlib import suppress
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from facever.app.core.config import get_settings
from facever.app.request_id import REQUEST_ID_HEADER
from facever.model.errors import ErrorCode

# A request's scope key: the loop time from which its body timeout counts, when that is not the end of
# its headers; infinite while it waits for admission (set by facever.app.admission).
BODY_CLOCK = "facever.body_clock"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# This process's open connections by client address (one event loop: no lock needed).
_open_by_address: Counter[str] = Counter()


def is_trusted_proxy(host: str, trusted_proxies: str) -> bool:
    """Whether ``host`` is one of FACEVER_TRUSTED_PROXIES: ``*``, addresses or networks (``10.0.0.0/8``),
    as uvicorn reads its ``forwarded_allow_ips``."""
    everyone, networks, names = _trusted(trusted_proxies)
    if everyone:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:  # not an IP address (a unix socket's peer): compare the text
        return host in names
    return any(address in network for network in networks)


@lru_cache
def _trusted(trusted_proxies: str) -> tuple[bool, list[IPNetwork], set[str]]:
    """FACEVER_TRUSTED_PROXIES parsed once: (``*`` given, its networks and addresses, other entries)."""
    entries = {entry.strip() for entry in trusted_proxies.split(",") if entry.strip()}
    networks: list[IPNetwork] = []
    for entry in entries:
        with suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=False))
    return "*" in entries, networks, entries


class ReadTimeouts:
    """Mixin over a uvicorn HTTP protocol; relies on its ``cycle``, ``transport``, ``connections``."""

    cycle: Any
    transport: asyncio.Transport
    connections: set
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self.header_timeout = settings.header_timeout
        self.body_timeout = settings.body_timeout
        self.max_connections = settings.max_connections
        self.max_per_client = settings.max_connections_per_client
        self.trusted_proxies = settings.trusted_proxies
        self._address: str | None = None  # counted in _open_by_address while this connection is open
        self._seen_cycle: Any = None
        self._phase = "headers"  # headers -> body -> app -> (response sent) headers ...
        self._timer: asyncio.TimerHandle | None = None

    # -- uvicorn's protocol interface -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if self.max_per_client and self.client and not is_trusted_proxy(self.client[0], self.trusted_proxies):
            self._address = self.client[0]
            _open_by_address[self._address] += 1
            if _open_by_address[self._address] > self.max_per_client:
                self._refuse(
                    ErrorCode.TOO_MANY_CLIENT_CONNECTIONS,
                    f"this address has {self.max_per_client} open connections, its limit; close one, or "
                    "retry shortly",
                )
                return
        if self.max_connections and len(self.connections) > self.max_connections:
            self._refuse(
                ErrorCode.TOO_MANY_CONNECTIONS,
                f"the server has {self.max_connections} open connections, its limit; retry shortly",
            )
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        if self._address is not None:
            _open_by_address[self._address] -= 1
            if not _open_by_address[self._address]:
                del _open_by_address[self._address]
            self._address = None
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
        if self._phase == "body" and self.cycle is not None:
            counted_from = self.cycle.scope.get(BODY_CLOCK)
            if counted_from is not None:
                left = counted_from + self.body_timeout - self.loop.time()
                if left > 0:
                    self._arm(min(left, self.body_timeout))
                    return
        if self._phase in {"headers", "body"} and not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, code: ErrorCode, message: str) -> None:
        request_id = uuid.uuid4().hex
        body = json.dumps({"error": {"code": code, "message": message}, "request_id": request_id}).encode()
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
