"""Prometheus metrics, served at /metrics.

With one server process the metrics live in prometheus_client's process-wide registry. With several
(FACEVER_WORKERS), ``facever serve`` gives them a shared folder (PROMETHEUS_MULTIPROC_DIR, set before
the workers start, removed when the server stops): each process writes its counts there and a scrape,
whichever process answers it, adds up every process's (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "facever_http_requests_total",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "facever_http_request_duration_seconds",
    "HTTP request latency by method and route template",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
)
INFERENCE_SECONDS = Histogram(
    "facever_inference_seconds",
    "Time per inference stage: decode, detect, embed (per request), search (identify)",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
INFERENCE_WAIT_SECONDS = Histogram(
    "facever_inference_queue_seconds", "Time requests waited for an inference slot", buckets=_LATENCY_BUCKETS
)
FACES_EMBEDDED = Counter("facever_faces_embedded_total", "Faces turned into embeddings")
IMAGES_REJECTED = Counter("facever_images_rejected_total", "Images rejected, by reason code", ["code"])
GALLERY_TEMPLATES = Gauge(
    "facever_gallery_templates",
    "Templates of the current model in the gallery identify searches",
    multiprocess_mode="livemax",  # every process holds the same gallery: not a sum
)
ERASURE_PENDING = Gauge(
    "facever_erasure_pending",
    "1 while deleted templates may still be in the database's files: SQLite's erasure checkpoint waits "
    "for a reader on an older snapshot, or PostgreSQL's VACUUM runs (see the README's erasure section)",
    multiprocess_mode="livemax",
)

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def metrics_response() -> Response:
    if os.environ.get(MULTIPROCESS_DIR):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def process_exits() -> None:
    """A server process stops: its live gauges leave the sum (its counters stay counted)."""
    if os.environ.get(MULTIPROCESS_DIR):
        multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Counts and times every HTTP request under its route template (/v1/identities/{identity_id}),
    never the raw path, so that the number of series stays bounded."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], template).observe(time.perf_counter() - start)
