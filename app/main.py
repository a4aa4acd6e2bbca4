"""The FastAPI application: ``create_app(settings)``, and ``run`` behind ``facever serve``."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from contextlib import asynccontextmanager, suppress

import anyio
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from facever.app import metrics, retention, template_crypto
from facever.app.admission import UploadAdmissionMiddleware
from facever.app.analysis import FaceAnalyser
from facever.app.api.routes import audit, health, identify, identities, info, verify
from facever.app.auth import Authenticator
from facever.app.body_limit import BodyLimitMiddleware
from facever.app.connections import HardenedHTTPProtocol
from facever.app.core.config import Settings, get_settings
from facever.app.db.migrate import upgrade
from facever.app.db.session import Database
from facever.app.errors import install_error_handlers
from facever.app.gallery_backend import open_gallery
from facever.app.log import configure_logging
from facever.app.metrics import MetricsMiddleware
from facever.app.request_id import RequestIdMiddleware
from facever.app.service import Service
from facever.app.stored_embeddings import ModelRef, TemplateCodec
from facever.app.template_keys import check_stored_templates
from facever.app.webui import install_ui
from facever.model.images import ImageLimits
from facever.model.runtime import FacePipeline

log = logging.getLogger("facever.app")

DOCS_ASSETS = "/docs-assets"  # Swagger UI's and ReDoc's files, from the fastapi-offline package

DESCRIPTION = """Face verification: compare two photos, enroll the people you know, verify or identify a photo
against them. Scores are cosine similarities of face embeddings (-1..1, higher = more alike).
Uploaded images are never stored; only face templates (embeddings) of enrolled faces are.
Every error has the body `{"error": {"code", "message"}, "request_id"}`."""


def create_app(settings: Settings | None = None, pipeline: FacePipeline | None = None) -> FastAPI:
    """The application. ``pipeline`` lets tests share one loaded model between app instances."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = await anyio.to_thread.run_sync(_start_service, settings, pipeline)
        app.state.service = service
        poller = asyncio.create_task(_poll_gallery(service))
        sweeper = asyncio.create_task(_sweep_retention(service))
        try:
            yield
        finally:
            for task in (poller, sweeper):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            service.analyser.close()
            service.database.dispose()
            metrics.process_exits()

    # /docs (Swagger UI) and /redoc load their scripts and styles from the fastapi-offline package,
    # served under DOCS_ASSETS, not from a CDN: they work on a host without internet access.
    app = FastAPIOffline(
        title="facever", version="1", description=DESCRIPTION, lifespan=lifespan, static_url=DOCS_ASSETS
    )
    # Each router carries its full prefix, so that route templates (metrics labels) are complete paths.
    for module in (verify, identities, identify, audit, info, health):
        app.include_router(module.router)
    install_ui(app)  # the web page at /ui/ ('/' redirects there)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(  # before any of a body is read: memory for the uploads in flight
        UploadAdmissionMiddleware,
        budget_bytes=settings.upload_budget_bytes,
        wait_timeout=settings.upload_wait_timeout,
        max_request_bytes=settings.max_request_bytes,
    )
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: every response gets an X-Request-ID
    return app


def _start_service(settings: Settings, pipeline: FacePipeline | None) -> Service:
    if settings.auth == "disabled":
        log.warning("!" * 78)
        log.warning(
            "AUTHENTICATION IS DISABLED (FACEVER_AUTH=disabled): every request is served without a key."
        )
        log.warning(
            "Anyone who can reach this service can enroll, delete and identify faces. Local trials only."
        )
        log.warning("!" * 78)
    # A malformed key, or templates under a key that is not configured, stop the start here (before
    # the model loads), with a message naming the setting: never a silent fallback to clear text.
    codec = TemplateCodec(template_crypto.key_ring(settings))
    database = Database(settings.database_url, settings.database_busy_timeout)
    log.info("database: %s", database.engine.url.render_as_string(hide_password=True))
    if settings.auto_migrate:
        upgrade(settings.database_url, database.engine)
    templates_line = check_stored_templates(database, codec)
    (log.info if codec.encrypts else log.warning)(templates_line)
    if pipeline is None:
        pipeline = FacePipeline(
            settings.resolved_model_dir,
            settings.device,
            settings.resolved_ort_threads,
            detection_device=settings.detection_device,
            detection_batch=settings.max_detection_batch if settings.detection_batch_window_ms else 2,
        )
    batch_window_s = settings.batch_window_ms / 1000
    detection_window_s = settings.detection_batch_window_ms / 1000
    pipeline.embedder.warm_up(settings.max_batch if batch_window_s else 2 * settings.max_enroll_images)
    log.info(
        "execution providers in use: detection %s, embedding %s; %d inference workers x %d onnxruntime "
        "threads; embedding batches: %s; detection batches: %s",
        pipeline.stage_providers["detection"],
        pipeline.stage_providers["embedding"],
        settings.resolved_inference_workers,
        settings.resolved_ort_threads,
        f"window {batch_window_s * 1000:g} ms, up to {settings.max_batch} faces" if batch_window_s else "off",
        f"window {detection_window_s * 1000:g} ms, up to {settings.max_detection_batch} photos"
        if detection_window_s
        else "off",
    )
    gallery = open_gallery(
        settings, database, ModelRef.of(pipeline.card), pipeline.card.embedding_size, codec
    )
    gallery.sync()
    authenticator = Authenticator(settings, database)
    if authenticator.enabled and authenticator.key_count() == 0:
        log.warning(
            "no API key exists yet: every request will get 401; create one with `facever keys create`"
        )
    analyser = FaceAnalyser(
        pipeline,
        ImageLimits(settings.max_image_bytes, settings.max_image_pixels),
        settings.resolved_inference_workers,
        settings.max_queue,
        batch_window_s,
        settings.max_batch,
        detection_window_s,
        settings.max_detection_batch,
    )
    return Service(settings, database, pipeline, analyser, gallery, authenticator, codec)


def _check_template_keys(settings: Settings) -> None:
    database = Database(settings.database_url)
    try:
        check_stored_templates(database, TemplateCodec(template_crypto.key_ring(settings)))
    finally:
        database.dispose()


async def _poll_gallery(service: Service) -> None:
    """Pick up enrollments and deletions made by other replicas (see facever.app.gallery)."""
    failing = False
    while True:
        await asyncio.sleep(service.settings.gallery_poll_interval)
        try:
            await service.sync_gallery()
            if failing:
                log.info("gallery sync works again")
            failing = False
        except Exception:
            if not failing:  # log once per outage, not twice a second
                log.exception(
                    "gallery sync failed; retrying every %.1f s", service.settings.gallery_poll_interval
                )
            failing = True


async def _sweep_retention(service: Service) -> None:
    """Erase expired identities and old audit records (see facever.app.retention), at start and then
    every FACEVER_RETENTION_SWEEP_INTERVAL seconds."""
    failing = False
    while True:
        try:
            result = await anyio.to_thread.run_sync(retention.sweep, service.settings, service.database)
            if result.erased_identities:
                await service.sync_gallery()
            failing = False
        except Exception:
            if not failing:
                log.exception(
                    "retention sweep failed; retrying every %.1f s", service.settings.retention_sweep_interval
                )
            failing = True
        await asyncio.sleep(service.settings.retention_sweep_interval)


def serve_app() -> FastAPI:
    """The factory uvicorn calls in each worker process."""
    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def _url_host(host: str) -> str:
    """The host part of a URL for the address the server listens on (all addresses: this machine)."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run(host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level)
    if settings.auto_migrate:  # once here, so that several workers do not race to migrate
        upgrade(settings.database_url)
    _check_template_keys(settings)  # a wrong or missing key: one clear error before any worker starts
    if workers is not None:
        # Every worker reads the settings again: the layout it derives must match this count.
        os.environ["FACEVER_WORKERS"] = str(workers)
        settings = get_settings.__wrapped__()
    workers = settings.resolved_workers
    log.info(
        "%d server processes (FACEVER_WORKERS), each with %d inference workers x %d onnxruntime threads",
        workers,
        settings.resolved_inference_workers,
        settings.resolved_ort_threads,
    )
    host, port = host or settings.host, port or settings.port
    log.info("web page: http://%s:%d/ui/ (API documentation: /docs)", _url_host(host), port)
    metrics_dir = None
    if workers > 1 and not os.environ.get(metrics.MULTIPROCESS_DIR):
        # Set before uvicorn spawns the workers, which inherit it: /metrics then sums them all.
        metrics_dir = tempfile.mkdtemp(prefix="facever-metrics-")
        os.environ[metrics.MULTIPROCESS_DIR] = metrics_dir
    try:
        uvicorn.run(
            "facever.app.main:serve_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            # Read timeouts and the connection limit (facever.app.connections); keep-alive is uvicorn's.
            http=HardenedHTTPProtocol,
            # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: a local client could then
            # pose as a new address per request and dodge the failed-authentication limit.
            proxy_headers=bool(settings.trusted_proxies.strip()),
            forwarded_allow_ips=settings.trusted_proxies.strip() or None,
            # uvicorn annotates it int but only hands it to loop.call_later, which takes a float.
            timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
