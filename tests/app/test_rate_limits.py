"""Rate limits: failed authentications per client address (429 + Retry-After), requests per key."""

from __future__ import annotations

import httpx
import pytest
from service_samples import ADMIN, VERIFY

from facever.app.ratelimit import FailedAuthLimiter, KeyRateLimiter
from facever.live_server import LiveServer

WRONG = {"X-API-Key": "fvk_wrong-key"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"] and body["request_id"]
    return body


def test_failed_authentications_are_limited_per_address(sqlite_url, start_app):
    with start_app(sqlite_url, failed_auth_limit=5, failed_auth_window=60) as client:
        for _ in range(3):
            assert_error(client.get("/v1/identities", headers=WRONG), 401, "invalid_api_key")
        # No key is not a guess: a page opened 25 times before its key is typed locks no one out.
        for _ in range(25):
            assert_error(client.get("/v1/identities"), 401, "missing_api_key")
        for _ in range(2):
            assert_error(client.get("/v1/identities", headers=WRONG), 401, "invalid_api_key")
        for _ in range(3):
            refused = client.get("/v1/identities", headers=WRONG)
            assert_error(refused, 429, "too_many_failed_auth")
            assert 1 <= int(refused.headers["Retry-After"]) <= 60
        # A valid key from the same address is still served (one client's bad key locks no one out).
        assert client.get("/v1/identities", headers=ADMIN).status_code == 200
        # X-Forwarded-For from a peer that is not a trusted proxy does not change the address.
        other = client.get("/v1/identities", headers={**WRONG, "X-Forwarded-For": "10.0.0.9"})
        assert_error(other, 429, "too_many_failed_auth")


def test_failed_authentications_are_not_limited_when_the_limit_is_0(sqlite_url, start_app):
    with start_app(sqlite_url, failed_auth_limit=0) as client:
        for _ in range(30):
            assert_error(client.get("/v1/identities", headers=WRONG), 401, "invalid_api_key")


def test_the_failure_window_ends():
    now = [0.0]
    limiter = FailedAuthLimiter(limit=2, window=10, clock=lambda: now[0])
    for _ in range(2):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
    now[0] = 3.5
    assert limiter.retry_after("a") == 7 and limiter.retry_after("b") is None
    now[0] = 10.0
    assert limiter.retry_after("a") is None


def test_the_per_key_rate_is_off_by_default(sqlite_client):
    for _ in range(30):
        assert sqlite_client.get("/v1/identities", headers=ADMIN).status_code == 200


def test_a_key_over_its_rate_gets_429(sqlite_url, start_app):
    with start_app(sqlite_url, key_rate_limit=0.5, key_rate_burst=3) as client:
        for _ in range(3):
            assert client.get("/v1/identities", headers=ADMIN).status_code == 200
        refused = client.get("/v1/identities", headers=ADMIN)
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) == 2
        # Each key has its own bucket.
        assert client.post("/v1/verify", headers=VERIFY).status_code != 429


def test_the_token_bucket_refills():
    now = [0.0]
    limiter = KeyRateLimiter(rate=2, burst=0, clock=lambda: now[0])
    assert limiter.burst == 4
    assert [limiter.take("k") for _ in range(5)] == [None, None, None, None, 1]
    now[0] = 0.5
    assert limiter.take("k") is None and limiter.take("k") == 1


@pytest.mark.slow
@pytest.mark.parametrize("trusted_proxies, limited", [("", True), ("127.0.0.1", False)])
def test_forwarded_addresses_count_only_from_trusted_proxies(tmp_path, trusted_proxies, limited):
    """A real server (uvicorn reads X-Forwarded-For, not the app): by default a local client that sends
    a new X-Forwarded-For with every wrong key is still one address and gets 429; behind a proxy the
    operator lists, each forwarded address counts on its own."""
    settings = {"auth": "enabled", "failed_auth_limit": "5", "trusted_proxies": trusted_proxies}
    with LiveServer(tmp_path, **settings) as server, httpx.Client(base_url=server.url) as client:
        statuses = [
            client.get("/v1/identities", headers={**WRONG, "X-Forwarded-For": f"192.0.2.{n}"}).status_code
            for n in range(1, 11)
        ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == ([429] * 5 if limited else [401] * 5)
