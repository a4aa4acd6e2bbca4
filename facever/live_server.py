"""``facever serve`` as a real child process on a free port of 127.0.0.1 (temporary SQLite database,
auth disabled), for what needs the HTTP server itself: the benchmarks' load sitting and the tests of
connection timeouts, server memory and the web page. Stopped gracefully on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LiveServer:
    """``settings`` become FACEVER_* variables: ``LiveServer(dir, header_timeout="1")``."""

    def __init__(
        self,
        workdir: Path,
        startup_timeout_s: float = 120,
        cpus: str | None = None,
        **settings: str,
    ):
        """``cpus``: the cores the server may use, as ``taskset -c`` takes them (e.g. ``"0-3"``)."""
        self.cpus = cpus
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.workdir = Path(workdir)
        self.log_path = self.workdir / "server.log"
        self.startup_timeout_s = startup_timeout_s
        self.env = {
            **os.environ,
            "FACEVER_DATABASE_URL": f"sqlite:///{Path(workdir) / 'live.db'}",
            "FACEVER_AUTH": "disabled",
            "FACEVER_LOG_LEVEL": os.environ.get("FACEVER_LOG_LEVEL", "WARNING"),
            **{f"FACEVER_{name.upper()}": value for name, value in settings.items()},
        }
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LiveServer:
        # `python -m facever.cli` rather than the console script: the same interpreter, and a main
        # module that uvicorn's worker processes (spawned) can import without running it again.
        command = [sys.executable, "-m", "facever.cli", "serve", "--host", HOST, "--port", str(self.port)]
        if self.cpus is not None:
            command = ["taskset", "-c", self.cpus, *command]
        with self.log_path.open("wb") as log:
            # cwd: in the repository's root, ./facever (the CLI's folder) would shadow the package
            self.process = subprocess.Popen(
                command, cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"facever serve exited with {self.process.returncode}:\n{self.log_tail()}")
            if self._healthy():
                return self
            time.sleep(0.25)
        self.__exit__()
        raise RuntimeError(
            f"facever serve did not answer /healthz within {self.startup_timeout_s} s:\n{self.log_tail()}"
        )

    def __exit__(self, *exc) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def memory_kib(self, field: str = "VmRSS") -> int:
        """VmRSS (now) or VmHWM (peak) of the server, in KiB: summed over its processes (with several
        workers, uvicorn's supervisor and each worker)."""
        assert self.process is not None
        return sum(_status_kib(pid, field) for pid in _process_tree(self.process.pid))

    def worker_pids(self) -> list[int]:
        """The server's processes below the one started (uvicorn's workers), if any."""
        assert self.process is not None
        return [pid for pid in _process_tree(self.process.pid) if pid != self.process.pid]

    def connect(self) -> socket.socket:
        return socket.create_connection((HOST, self.port), timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    tree, index = [pid], 0
    while index < len(tree):
        children = Path(f"/proc/{tree[index]}/task/{tree[index]}/children")
        try:
            tree += [int(child) for child in children.read_text().split()]
        except OSError:  # gone meanwhile
            pass
        index += 1
    return tree


def _status_kib(pid: int, field: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:  # exited meanwhile
        return 0
    for line in lines:
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)
