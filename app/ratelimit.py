"""Rate limits on authentication: failed attempts per client address, and (optional) requests per key.

- Failed authentications (a missing or unknown API key) are counted per client address over
  FACEVER_FAILED_AUTH_WINDOW seconds; past FACEVER_FAILED_AUTH_LIMIT of them, a request from that
  address without a valid key gets 429 ``too_many_failed_auth`` with ``Retry-After`` (the seconds
  until the window ends) instead of 401. A request with a valid key is still served: behind a
  reverse proxy many clients share one address, and one client's bad key must not lock the others
  out. The address is the one uvicorn reports: the peer, or X-Forwarded-For from a trusted proxy
  (uvicorn's ``--forwarded-allow-ips``, 127.0.0.1 by default).
- FACEVER_KEY_RATE_LIMIT (requests per second, off by default) limits each API key with a token
  bucket of FACEVER_KEY_RATE_BURST requests: over it, 429 ``rate_limited`` with ``Retry-After``.

The counts live in the memory of each server process: every worker and every replica limits on its
own, and a restart forgets them. Each table holds at most MAX_TRACKED entries (the oldest go first).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from facever.app.core.config import Settings

MAX_TRACKED = 65_536


class FailedAuthLimiter:
    def __init__(self, limit: int, window: float, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self.clock = clock
        self._windows: OrderedDict[str, list[float]] = OrderedDict()  # address -> [start, failures]
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> int | None:
        """Seconds until ``address`` may try again, or None when it is under the limit."""
        if not self.limit:
            return None
        now = self.clock()
        with self._lock:
            entry = self._windows.get(address)
            if entry is None or now - entry[0] >= self.window or entry[1] < self.limit:
                return None
            return max(1, math.ceil(entry[0] + self.window - now))

    def failed(self, address: str) -> None:
        if not self.limit:
            return
        now = self.clock()
        with self._lock:
            entry = self._windows.get(address)
            if entry is None or now - entry[0] >= self.window:
                self._windows[address] = [now, 1]
                self._windows.move_to_end(address)
                while len(self._windows) > MAX_TRACKED:
                    self._windows.popitem(last=False)
            else:
                entry[1] += 1


class KeyRateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst or max(1, math.ceil(2 * rate))
        self.clock = clock
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, updated]
        self._lock = threading.Lock()

    def take(self, key: str) -> int | None:
        """Spend one request of ``key``: None when allowed, else the seconds to wait."""
        if not self.rate:
            return None
        now = self.clock()
        with self._lock:
            tokens, updated = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[key] = [tokens, now]
            while len(self._buckets) > MAX_TRACKED:
                self._buckets.popitem(last=False)
        return None if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))


class AuthLimits:
    def __init__(self, settings: Settings):
        self.failed_auth = FailedAuthLimiter(settings.failed_auth_limit, settings.failed_auth_window)
        self.key_rate = KeyRateLimiter(settings.key_rate_limit, settings.key_rate_burst)
