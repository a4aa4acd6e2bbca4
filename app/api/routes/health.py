"""Liveness, readiness and Prometheus metrics (no API key: meant for the orchestrator and the scraper)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response

from facever.app.api.deps import ServiceDep
from facever.app.api.responses import describe
from facever.app.errors import error_response
from facever.app.metrics import metrics_response
from facever.app.schemas import ErrorResponse, Health
from facever.model.errors import ErrorCode

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="Readiness: model loaded, database reachable and writable, gallery loaded",
    responses={
        503: {
            "model": ErrorResponse,
            "description": describe(503, [ErrorCode.NOT_READY], heading="Not ready"),
        }
    },
)
async def readyz(request: Request, service: ServiceDep) -> Health | Response:
    checks = {"model": "ok", "gallery": "ok" if service.gallery.version is not None else "not loaded"}
    try:
        await anyio.to_thread.run_sync(service.database.ping)
        problem = await anyio.to_thread.run_sync(service.database.write_problem)
        checks["database"] = "ok" if problem is None else f"not writable: {problem.code.value}"
    except Exception as exc:  # any driver error means "not reachable"
        checks["database"] = f"unreachable: {type(exc).__name__}"
    failing = {name: state for name, state in checks.items() if state != "ok"}
    if failing:
        message = "; ".join(f"{name}: {state}" for name, state in failing.items())
        return error_response(request, 503, ErrorCode.NOT_READY, message)
    return Health(status="ready", checks=checks)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics() -> Response:
    return metrics_response()
