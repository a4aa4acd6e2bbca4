"""kill -9: what the service answered 201 or 204 for survives the server being killed without warning,
on both databases (with PostgreSQL, through the pgvector gallery where CI installs it): a restarted
server identifies the enrolled identity and never the deleted one."""

from __future__ import annotations

import os
import signal

import httpx
from service_samples import lfw

from facever.live_server import LiveServer, _process_tree


def identified(server: LiveServer, photo) -> set[int]:
    response = httpx.post(
        f"{server.url}/v1/identify",
        files={"image": ("probe.jpg", lfw(*photo))},
        data={"include_below_threshold": "true", "top_k": "100"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return {match["identity"]["id"] for match in response.json()["matches"]}


def enroll(server: LiveServer, name: str, photo) -> int:
    identity = httpx.post(f"{server.url}/v1/identities", json={"name": name}, timeout=60).json()["id"]
    response = httpx.post(
        f"{server.url}/v1/identities/{identity}/faces", files={"images": ("1.jpg", lfw(*photo))}, timeout=60
    )
    assert response.status_code == 201, response.text
    return identity


def test_writes_survive_kill_9(database_url, tmp_path):
    settings = {"database_url": database_url, "workers": "1"}
    with LiveServer(tmp_path, **settings) as server:
        kept = enroll(server, "Laura Bush", ("Laura_Bush", 1))
        deleted = enroll(server, "John Ashcroft", ("John_Ashcroft", 1))
        assert httpx.delete(f"{server.url}/v1/identities/{deleted}", timeout=60).status_code == 204
        assert server.process is not None
        for pid in _process_tree(server.process.pid):  # the server we started, every process of it
            os.kill(pid, signal.SIGKILL)
        server.process.wait()
    with LiveServer(tmp_path, **settings) as restarted:
        assert kept in identified(restarted, ("Laura_Bush", 2))
        assert deleted not in identified(restarted, ("John_Ashcroft", 2))
