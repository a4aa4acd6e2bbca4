"""Admission of request bodies before they are read: a memory budget for the uploads in flight.

A request with a body reserves its size (its ``Content-Length``; a body without one, sent in chunks,
FACEVER_MAX_REQUEST_BYTES) from the process's budget (FACEVER_UPLOAD_BUDGET_BYTES) before any of it
is read, and gives it back once its response is sent. A request that does not fit waits, in arrival
order, up to FACEVER_UPLOAD_WAIT_TIMEOUT seconds; then it gets 503 ``uploads_busy`` with
``Retry-After``, its body unread. Meanwhile its body stays in the client and the kernel: uvicorn stops
reading a socket once 64 KiB the application has not asked for are buffered. So the bodies held in
memory at once stay within the budget, however many clients upload at the same time. The wait is not
the client's: FACEVER_BODY_TIMEOUT counts from the admission (facever.app.connections.BODY_CLOCK).

Bodies of at most 64 KiB pass without a reservation: uvicorn has read that much before anything here
runs. A body declared larger than FACEVER_MAX_REQUEST_BYTES passes too: BodyLimitMiddleware answers
it 413 without reading it.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from facever.app.connections import BODY_CLOCK
from facever.app.errors import envelope
from facever.app.request_id import request_id_of
from facever.model.errors import ErrorCode

UNRESERVED_BODY_BYTES = 64 * 1024  # uvicorn's HIGH_WATER_LIMIT: buffered before the app asks


class UploadBudget:
    """Bytes shared by the requests of one process (one event loop), granted first come, first served."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.in_use = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def size_of(self, size: int) -> int:
        """What a body of ``size`` bytes reserves: a body larger than the budget waits for all of it."""
        return min(size, self.capacity)

    async def acquire(self, size: int, timeout: float) -> bool:
        """Reserve ``size`` (from ``size_of``) bytes, waiting up to ``timeout`` s; False if not granted."""
        if not self._waiting and self.in_use + size <= self.capacity:
            self.in_use += size
            return True
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((size, grant))
        try:
            await asyncio.wait_for(asyncio.shield(grant), timeout)
        except TimeoutError:
            pass
        except BaseException:  # cancelled: give back what may have been granted meanwhile
            self._withdraw(size, grant)
            raise
        if grant.done():  # granted, perhaps just as the time ran out
            return True
        self._withdraw(size, grant)
        return False

    def release(self, size: int) -> None:
        self.in_use -= size
        self._grant_waiting()

    def _withdraw(self, size: int, grant: asyncio.Future[None]) -> None:
        if grant.done():
            self.release(size)
            return
        self._waiting.remove((size, grant))
        grant.cancel()
        self._grant_waiting()  # the next in line may fit now

    def _grant_waiting(self) -> None:
        while self._waiting and self.in_use + self._waiting[0][0] <= self.capacity:
            size, grant = self._waiting.popleft()
            self.in_use += size
            grant.set_result(None)


class UploadAdmissionMiddleware:
    def __init__(self, app: ASGIApp, budget_bytes: int, wait_timeout: float, max_request_bytes: int):
        self.app = app
        self.budget = UploadBudget(budget_bytes) if budget_bytes else None
        self.wait_timeout = wait_timeout
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = self._reservation(scope) if scope["type"] == "http" and self.budget else 0
        if not size:
            await self.app(scope, receive, send)
            return
        assert self.budget is not None
        scope[BODY_CLOCK] = math.inf  # the body timeout stands still while the request waits
        admitted = await self.budget.acquire(size, self.wait_timeout)
        scope[BODY_CLOCK] = asyncio.get_running_loop().time()
        if not admitted:
            message = (
                "the uploads in flight fill this server's memory budget for request bodies; retry shortly"
            )
            response = JSONResponse(
                envelope(ErrorCode.UPLOADS_BUSY, message, request_id_of(scope)),
                status_code=503,
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.budget.release(size)

    def _reservation(self, scope: Scope) -> int:
        """Bytes this request reserves before its body is read (0: none)."""
        assert self.budget is not None
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return 0  # uvicorn refuses a malformed Content-Length before the app runs
            size = int(declared)
            if size <= UNRESERVED_BODY_BYTES or size > self.max_request_bytes:
                return 0
            return self.budget.size_of(size)
        if b"transfer-encoding" in headers:  # chunked: its size is known only once read
            return self.budget.size_of(self.max_request_bytes)
        return 0
