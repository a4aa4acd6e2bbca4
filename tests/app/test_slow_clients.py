"""Slow clients against a real ``facever serve``: header and body timeouts, the connection limits (per
process and per client address)."""

from __future__ import annotations

import json
import socket
import time

import pytest
from live_server import HOST, LiveServer, closed_by_server

from facever.app.connections import is_trusted_proxy

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(
        tmp_path_factory.mktemp("slow-clients"),
        header_timeout=str(HEADER_TIMEOUT),
        body_timeout=str(BODY_TIMEOUT),
        keep_alive_timeout="30",  # longer than the header timeout: the header timeout must act alone
        max_connections="4",
    ) as live:
        yield live


def test_a_connection_that_sends_half_a_request_line_is_closed(server):
    with server.connect() as sock:
        sock.sendall(b"GET /heal")
        start = time.monotonic()
        assert closed_by_server(sock, within=HEADER_TIMEOUT + 3)
        assert time.monotonic() - start >= HEADER_TIMEOUT - 0.2


def test_a_connection_that_sends_nothing_is_closed(server):
    with server.connect() as sock:
        assert closed_by_server(sock, within=HEADER_TIMEOUT + 3)


def test_headers_trickled_past_the_header_timeout_are_cut_off(server):
    with server.connect() as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        deadline = time.monotonic() + HEADER_TIMEOUT + 3
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except OSError:
                closed = True
                break
            closed = closed_by_server(sock, within=0.3)
        assert closed


def test_a_body_trickled_past_the_body_timeout_is_cut_off(server):
    with server.connect() as sock:
        sock.sendall(
            b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        start = time.monotonic()
        assert not closed_by_server(sock, within=HEADER_TIMEOUT + 0.5)  # the header timeout is over
        assert closed_by_server(sock, within=BODY_TIMEOUT + 3)
        assert time.monotonic() - start >= BODY_TIMEOUT - 0.2


def test_a_prompt_client_is_served_and_kept_alive_past_the_header_timeout(server):
    with server.connect() as sock:
        for _ in range(2):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            response = b""
            while not response.endswith(b"}"):
                response += sock.recv(65536)
            assert response.startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT / 2)


def test_a_connection_over_the_limit_gets_503_in_the_envelope(server):
    time.sleep(HEADER_TIMEOUT + 0.5)  # connections of earlier tests are gone
    held = [server.connect() for _ in range(4)]
    try:
        time.sleep(0.2)
        with server.connect() as extra:
            extra.settimeout(5)
            response = extra.recv(65536)
        head, _, body = response.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 503")
        assert b"retry-after: 1" in head.lower()
        payload = json.loads(body)
        assert payload["error"]["code"] == "too_many_connections" and payload["request_id"]
    finally:
        for sock in held:
            sock.close()


def connect_from(server: LiveServer, source: str) -> socket.socket:
    """A connection to the server from the loopback address ``source`` (127.0.0.2 and so on: Linux
    answers the whole of 127.0.0.0/8)."""
    return socket.create_connection((HOST, server.port), timeout=10, source_address=(source, 0))


def get(sock: socket.socket, path: str = "/healthz") -> bytes:
    """The response head of one GET on ``sock`` ("" when the server closed it)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(65536)
        if not chunk:
            break
        response += chunk
    return response


def test_one_address_holding_idle_connections_leaves_room_for_others(tmp_path):
    with LiveServer(
        tmp_path,
        header_timeout="30",  # the idle connections stay for the whole test
        max_connections="8",
        max_connections_per_client="4",
    ) as server:
        hog = [connect_from(server, "127.0.0.1") for _ in range(8)]
        try:
            time.sleep(0.3)
            answered = []
            for _ in range(6):
                with connect_from(server, "127.0.0.2") as other:
                    other.settimeout(5)
                    answered.append(get(other).startswith(b"HTTP/1.1 200"))
            assert all(answered), answered
            refused = [sock for sock in hog if closed_by_server(sock, within=0.2)]
            assert len(refused) == 4  # over this address's share: answered 503 and closed
        finally:
            for sock in hog:
                sock.close()


def test_a_connection_over_the_address_share_gets_503_in_the_envelope(tmp_path):
    with LiveServer(tmp_path, header_timeout="30", max_connections_per_client="2") as server:
        held = [connect_from(server, "127.0.0.3") for _ in range(2)]
        try:
            time.sleep(0.2)
            with connect_from(server, "127.0.0.3") as extra:
                extra.settimeout(5)
                response = extra.recv(65536)
            head, _, body = response.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in head.lower()
            assert json.loads(body)["error"]["code"] == "too_many_client_connections"
            with connect_from(server, "127.0.0.4") as other:  # another address is served
                other.settimeout(5)
                assert get(other).startswith(b"HTTP/1.1 200")
        finally:
            for sock in held:
                sock.close()


def test_a_trusted_proxy_is_held_only_to_the_process_limit(tmp_path):
    with LiveServer(
        tmp_path, header_timeout="30", max_connections_per_client="1", trusted_proxies="127.0.0.5, 10.0.0.0/8"
    ) as server:
        held = [connect_from(server, "127.0.0.5") for _ in range(3)]
        try:
            for sock in held:
                assert get(sock).startswith(b"HTTP/1.1 200")
        finally:
            for sock in held:
                sock.close()


@pytest.mark.parametrize(
    "host, trusted_proxies, trusted",
    [
        ("127.0.0.1", "", False),
        ("10.1.2.3", "10.0.0.0/8", True),
        ("10.1.2.3", "127.0.0.1, 192.168.0.0/16", False),
        ("::1", "::1", True),
        ("203.0.113.7", "*", True),
        ("not-an-ip", "not-an-ip", True),
    ],
)
def test_trusted_proxies_are_read_as_addresses_networks_or_everyone(host, trusted_proxies, trusted):
    assert is_trusted_proxy(host, trusted_proxies) is trusted
