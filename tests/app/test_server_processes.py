"""`facever serve` with several processes (FACEVER_WORKERS): they answer on one port, each with its
own model, and /metrics adds up what all of them counted, whichever process answers the scrape."""

from __future__ import annotations

import re
import urllib.request

import pytest

from facever.live_server import LiveServer

REQUESTS = 24

pytestmark = pytest.mark.slow


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def counted(metrics: str, route: str) -> float:
    pattern = (
        rf'^facever_http_requests_total{{[^}}]*route="{re.escape(route)}"[^}}]*status="200"[^}}]*}} (\S+)$'
    )
    return sum(float(value) for value in re.findall(pattern, metrics, re.M))


def test_metrics_count_every_process(tmp_path):
    with LiveServer(tmp_path, workers="2") as server:
        assert len(server.worker_pids()) >= 2  # uvicorn's supervisor and its two workers
        for _ in range(REQUESTS):
            get(f"{server.url}/readyz")
        scrapes = [get(f"{server.url}/metrics") for _ in range(4)]  # answered by either process
        assert all(counted(text, "/readyz") == REQUESTS for text in scrapes), scrapes[0][:2000]
        assert "facever_gallery_templates 0.0" in scrapes[0]  # one value, not one per process


def test_the_log_gives_the_web_page_address(tmp_path):
    with LiveServer(tmp_path, log_level="INFO") as server:
        match = re.search(r"web page: (http://\S+/ui/)", server.log_path.read_text())
        assert match, server.log_tail()
        assert match.group(1) == f"{server.url}/ui/"
        assert "<html" in get(match.group(1)).lower()
