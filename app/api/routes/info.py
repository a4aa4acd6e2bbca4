"""GET /v1/info: the model, the execution providers in use, the gallery, the auth mode."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import APIRouter

from facever.app.api.deps import ServiceDep, VerifyScope
from facever.app.api.responses import error_responses
from facever.app.auth import Principal
from facever.app.core.config import shipped_models
from facever.app.schemas import GalleryInfo, InfoResponse, Limits

router = APIRouter(prefix="/v1", tags=["operations"])

AUTH_DISABLED_WARNING = (
    "AUTHENTICATION IS DISABLED (FACEVER_AUTH=disabled): anyone who can reach this service can enroll, "
    "delete and identify faces. Use it only for local trials."
)


def _package_version() -> str:
    try:
        return version("facever")
    except PackageNotFoundError:
        return "unknown"


@router.get(
    "/info",
    response_model=InfoResponse,
    summary="Model card, execution providers, gallery size, auth mode",
    responses=error_responses(401, 403, 429),
)
async def info(service: ServiceDep, principal: Annotated[Principal, VerifyScope]) -> InfoResponse:
    settings = service.settings
    return InfoResponse(
        service={"name": "facever", "version": _package_version()},
        model=service.pipeline.card.model_dump(mode="json", by_alias=True),
        threshold=service.threshold,
        identify_threshold=service.identify_threshold,
        model_source=settings.model,
        shipped_models=shipped_models(),
        providers=service.pipeline.providers,
        stage_providers=service.pipeline.stage_providers,
        detection_ms=service.pipeline.detection_ms,
        gallery=GalleryInfo(
            templates=service.gallery.size,
            identities=service.gallery.identity_count,
            version=service.gallery.version,
            encrypted_at_rest=service.codec.encrypts,
        ),
        auth=settings.auth,
        key_scope=principal.scope,
        warning=AUTH_DISABLED_WARNING if settings.auth == "disabled" else None,
        multi_face_policy=settings.multi_face_policy,
        workers=settings.resolved_workers,
        inference_workers=settings.resolved_inference_workers,
        ort_threads=settings.resolved_ort_threads,
        batch_window_ms=service.analyser.batcher.window_s * 1000 if service.analyser.batcher else 0.0,
        max_batch=settings.max_batch,
        detection_batch_window_ms=(
            service.analyser.detection_batcher.window_s * 1000 if service.analyser.detection_batcher else 0.0
        ),
        max_detection_batch=settings.max_detection_batch,
        limits=Limits(
            max_image_bytes=settings.max_image_bytes,
            max_image_pixels=settings.max_image_pixels,
            max_request_bytes=settings.max_request_bytes,
            max_enroll_images=settings.max_enroll_images,
        ),
        database=service.database.backend,
    )
