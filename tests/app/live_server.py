"""Helpers for tests that need ``facever serve`` as a real process (facever.live_server)."""

from __future__ import annotations

import socket

from facever.live_server import HOST, LiveServer, free_port

__all__ = ["HOST", "LiveServer", "closed_by_server", "free_port"]


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """True when the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
