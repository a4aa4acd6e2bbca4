"""``facever serve`` as a real process on a free port (temporary SQLite, auth disabled), for tests
that need the HTTP server itself: connection timeouts, the server process's memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LiveServer:
    def __init__(self, workdir: Path, **settings: str):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.log_path = workdir / "server.log"
        self.env = {
            **os.environ,
            "FACEVER_DATABASE_URL": f"sqlite:///{workdir / 'live.db'}",
            "FACEVER_AUTH": "disabled",
            "FACEVER_LOG_LEVEL": "WARNING",
            **{f"FACEVER_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        facever = Path(sys.executable).with_name("facever")  # the console script of this environment
        command = [str(facever), "serve", "--host", HOST, "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"facever serve exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(f"facever serve did not answer /healthz within {STARTUP_TIMEOUT_S} s")

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def memory_kib(self, field: str) -> int:
        """VmRSS (now) or VmHWM (peak) of the server process, in KiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def connect(self) -> socket.socket:
        return socket.create_connection((HOST, self.port), timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
