"""POST /v1/verify: are the faces in two images the same person?"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from facever.app.analysis import every_face
from facever.app.api import auditing
from facever.app.api.deps import ServiceDep, VerifyScope
from facever.app.api.present import face_out, model_info, timing
from facever.app.api.responses import IMAGE_ERRORS, error_responses
from facever.app.api.uploads import ImageFields, read_image_request, request_body
from facever.app.request_id import request_id_of
from facever.app.schemas import VerifyJSON, VerifyOptions, VerifyResponse
from facever.model.matching import is_match, similarity

router = APIRouter(prefix="/v1", tags=["verify"])

FIELDS = ImageFields(single=("image1", "image2"))


@router.post(
    "/verify",
    response_model=VerifyResponse,
    summary="Verify two images",
    description="Send two images, as multipart fields `image1` and `image2` or as JSON with base64 strings. "
    "The largest face of each (or the only one, under the multi-face policy `single`) is compared. "
    "`score` is the cosine similarity of the two face embeddings (-1..1, higher = more alike); "
    "`verified` is `score >= threshold`; `probability` is the calibrated probability that the faces are "
    "the same person, assuming as many same-person as different-person comparisons. Images are not stored.",
    dependencies=[VerifyScope],
    responses=error_responses(*IMAGE_ERRORS),
    openapi_extra=request_body(VerifyJSON, FIELDS),
)
async def verify(request: Request, service: ServiceDep) -> VerifyResponse:
    started = time.perf_counter()
    uploads, options = await read_image_request(request, FIELDS, VerifyOptions, VerifyJSON, service.settings)
    analysis = await service.analyser.analyse(uploads, service.policy_for(options.multi_face_policy))
    first, second = every_face(analysis, uploads)
    score = float(similarity(first.embedding, second.embedding))
    threshold = service.threshold_for(options.threshold)
    verified = is_match(score, threshold)
    await auditing.record(
        request, service, "verify", decision=auditing.decision(verified), score=score, threshold=threshold
    )
    return VerifyResponse(
        verified=verified,
        score=score,
        probability=service.probability(score),
        threshold=threshold,
        model=model_info(service.model),
        faces=[
            face_out(first, "image1", options.include_crop),
            face_out(second, "image2", options.include_crop),
        ],
        timing_ms=timing(started, analysis.timings),
        request_id=request_id_of(request.scope),
    )
