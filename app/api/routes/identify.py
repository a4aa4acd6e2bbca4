"""POST /v1/identify: who, among the enrolled identities, is in this image?"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from facever.app import crud, metrics
from facever.app.analysis import every_face
from facever.app.api import auditing
from facever.app.api.deps import ServiceDep, VerifyScope
from facever.app.api.present import face_out, model_info, timing
from facever.app.api.responses import IMAGE_ERRORS, error_responses
from facever.app.api.uploads import ImageFields, read_image_request, request_body
from facever.app.request_id import request_id_of
from facever.app.schemas import IdentifyJSON, IdentifyMatch, IdentifyOptions, IdentifyResponse, IdentityRef
from facever.model.matching import is_match

router = APIRouter(prefix="/v1", tags=["identify"])

FIELDS = ImageFields(single=("image",))


@router.post(
    "/identify",
    response_model=IdentifyResponse,
    summary="Identify the person in an image",
    description="The probe's face is searched in the gallery of enrolled templates made by the current "
    "model. "
    "Each identity scores its best match (highest cosine similarity over its templates); the `top_k` best "
    "identities are returned, only those with score >= threshold unless `include_below_threshold` is true. "
    "Every search sees the database as committed, so an enrollment or deletion made through another "
    "process or replica shows here at once. With PostgreSQL and pgvector the search is approximate "
    "(HNSW, candidates re-ranked by exact cosine; see the README); otherwise it is exact.",
    dependencies=[VerifyScope],
    responses=error_responses(*IMAGE_ERRORS),
    openapi_extra=request_body(IdentifyJSON, FIELDS),
)
async def identify(request: Request, service: ServiceDep) -> IdentifyResponse:
    started = time.perf_counter()
    uploads, options = await read_image_request(
        request, FIELDS, IdentifyOptions, IdentifyJSON, service.settings
    )
    analysis = await service.analyser.analyse(uploads, service.policy_for(options.multi_face_policy))
    (probe,) = every_face(analysis, uploads)
    threshold = service.identify_threshold_for(options.threshold)
    top_k = options.top_k or service.settings.default_top_k

    # Enrollments made by the other server processes (FACEVER_WORKERS) or replicas are searched as
    # soon as they are committed: the in-memory gallery catches up (one single-row read when nothing
    # changed); the pgvector gallery's query reads the table itself.
    await service.catch_up_gallery()
    gallery_size = service.gallery.size
    search_started = time.perf_counter()
    min_score = None if options.include_below_threshold else threshold
    matches = await service.analyser.run(service.gallery.search, probe.embedding, top_k, min_score)
    search_seconds = time.perf_counter() - search_started
    metrics.INFERENCE_SECONDS.labels("search").observe(search_seconds)

    # Names come from the database: an identity deleted since the gallery last synced is dropped here.
    identities = await service.in_session(crud.identities_by_id, [match.identity_id for match in matches])
    found = [
        IdentifyMatch(
            identity=IdentityRef(id=identity.id, name=identity.name, external_id=identity.external_id),
            score=match.score,
            probability=service.probability(match.score),
            above_threshold=is_match(match.score, threshold),
            face_id=match.face_id,
        )
        for match in matches
        if (identity := identities.get(match.identity_id)) is not None
    ]
    await auditing.record(
        request,
        service,
        "identify",
        identity_ids=[m.identity.id for m in found],
        decision=auditing.decision(any(m.above_threshold for m in found)),
        score=found[0].score if found else None,
        threshold=threshold,
        detail={
            "top_k": top_k,
            "above_threshold": [m.identity.id for m in found if m.above_threshold],
            "gallery_size": gallery_size,
        },
    )
    return IdentifyResponse(
        matches=found,
        threshold=threshold,
        gallery_size=gallery_size,
        model=model_info(service.model),
        face=face_out(probe, "image"),
        timing_ms=timing(started, analysis.timings, search_seconds),
        request_id=request_id_of(request.scope),
    )
