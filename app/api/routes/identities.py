"""Identities: create, list, read, delete; enroll and delete faces; verify a probe against one identity."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from facever.app import audit, crud, metrics
from facever.app.analysis import AnalysedFace, every_face
from facever.app.api import auditing
from facever.app.api.deps import AdminScope, ServiceDep, VerifyScope
from facever.app.api.present import face_out, model_info, timing
from facever.app.api.responses import IDENTITY_INPUT_ERRORS, IMAGE_ERRORS, error_responses
from facever.app.api.uploads import ImageFields, read_image_request, request_body
from facever.app.db.models import Identity
from facever.app.errors import ApiError
from facever.app.request_id import request_id_of
from facever.app.schemas import (
    EnrollJSON,
    EnrollOptions,
    EnrollResponse,
    EnrollResult,
    ErrorBody,
    FaceRecord,
    IdentityCreate,
    IdentityDetail,
    IdentityOut,
    IdentityPage,
    IdentityRef,
    IdentityVerifyResponse,
    ModelInfo,
    ProbeJSON,
    ProbeOptions,
    StoredText,
)
from facever.app.service import Service
from facever.model.errors import ErrorCode
from facever.model.images import ImageError
from facever.model.matching import best_match, is_match

router = APIRouter(prefix="/v1/identities", tags=["identities"])

# Ids and offsets are 64-bit signed integers in both databases: larger ones are refused (422) up front.
MAX_ID = 2**63 - 1
IdentityId = Annotated[int, Path(ge=1, le=MAX_ID, description="the identity's id")]
FaceId = Annotated[int, Path(ge=1, le=MAX_ID, description="the face's id")]

ENROLL_FIELDS = ImageFields(repeated="images")
PROBE_FIELDS = ImageFields(single=("image",))
NOTHING_ENROLLED: dict[int | str, dict[str, Any]] = {
    200: {"description": "No face enrolled: every image was rejected"}
}


def _not_found(identity_id: int) -> ApiError:
    return ApiError(404, ErrorCode.IDENTITY_NOT_FOUND, f"there is no identity {identity_id}")


def _identity_out(identity: Identity, counts: tuple[int, int], retention_days: int) -> IdentityOut:
    return IdentityOut(
        id=identity.id,
        name=identity.name,
        external_id=identity.external_id,
        metadata=identity.attributes or {},
        face_count=counts[0],
        other_model_face_count=counts[1],
        created_at=identity.created_at,
        expires_at=crud.expires_at(identity, retention_days),
    )


@router.post(
    "",
    status_code=201,
    response_model=IdentityOut,
    summary="Create an identity",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 409, 413, 429, 503) | IDENTITY_INPUT_ERRORS,
)
def create_identity(body: IdentityCreate, request: Request, service: ServiceDep) -> IdentityOut:
    _check_metadata_size(body.metadata, service.settings.max_metadata_bytes)
    _check_expiry(body.expires_at, service.settings.identity_retention_days)
    record = auditing.entry(request, service, "create_identity", with_model=False, decision="created")
    with service.session() as session:
        try:
            identity = crud.create_identity(
                session, body.name, body.external_id, body.metadata, body.expires_at, record
            )
        except crud.ExternalIdTaken:
            raise ApiError(
                409, ErrorCode.EXTERNAL_ID_TAKEN, f"an identity with external_id {body.external_id!r} exists"
            ) from None
    return _identity_out(identity, (0, 0), service.settings.identity_retention_days)


def _check_expiry(expires_at: datetime | None, retention_days: int) -> None:
    if expires_at is None:
        return
    now = datetime.now(UTC)
    if expires_at <= now:
        raise ApiError(422, ErrorCode.INVALID_REQUEST, "expires_at must be in the future")
    if retention_days and expires_at > now + timedelta(days=retention_days):
        raise ApiError(
            422,
            ErrorCode.INVALID_REQUEST,
            f"expires_at is later than the retention limit of {retention_days} days "
            "(FACEVER_IDENTITY_RETENTION_DAYS)",
        )


def _check_metadata_size(metadata: dict, limit: int) -> None:
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode())
    if size > limit:
        raise ApiError(
            422,
            ErrorCode.METADATA_TOO_LARGE,
            f"the metadata is {size} bytes as JSON; the limit is {limit} (FACEVER_MAX_METADATA_BYTES)",
        )


@router.get(
    "",
    response_model=IdentityPage,
    summary="List identities",
    description="Identities in creation order, a page at a time. `needs_reenrollment=true` lists only "
    "those with no template of the current model (after a model change: enroll their photos again).",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 429) | IDENTITY_INPUT_ERRORS,
)
def list_identities(
    service: ServiceDep,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    needs_reenrollment: Annotated[
        bool, Query(description="only identities with no template of the current model")
    ] = False,
    name: Annotated[
        StoredText | None,
        Query(max_length=256, description="only identities whose name contains this (case-insensitive)"),
    ] = None,
) -> IdentityPage:
    with service.session() as session:
        without = service.model if needs_reenrollment else None
        identities, total = crud.list_identities(session, offset, limit, without, name)
        counts = crud.face_counts(session, [identity.id for identity in identities], service.model)
    days = service.settings.identity_retention_days
    return IdentityPage(
        items=[_identity_out(identity, counts[identity.id], days) for identity in identities],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.get(
    "/{identity_id}",
    response_model=IdentityDetail,
    summary="Read an identity with its faces",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 404, 429) | IDENTITY_INPUT_ERRORS,
)
def get_identity(identity_id: IdentityId, service: ServiceDep) -> IdentityDetail:
    with service.session() as session:
        identity = crud.get_identity(session, identity_id)
        if identity is None:
            raise _not_found(identity_id)
        counts = crud.face_counts(session, [identity_id], service.model)[identity_id]
        faces = crud.faces_of(session, identity_id)
    return IdentityDetail(
        **_identity_out(identity, counts, service.settings.identity_retention_days).model_dump(),
        faces=[
            FaceRecord(
                id=face.id,
                model=ModelInfo(name=face.model_name, version=face.model_version),
                detection_score=face.detection_score,
                quality=None if face.quality is None else round(face.quality, 3),
                created_at=face.created_at,
            )
            for face in faces
        ],
    )


@router.delete(
    "/{identity_id}",
    status_code=204,
    summary="Delete an identity and all its faces",
    description="Removes the identity and every template of it from the database; identify forgets it at "
    "once on this replica and within a second on the others.",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 404, 429, 503) | IDENTITY_INPUT_ERRORS,
)
async def delete_identity(identity_id: IdentityId, request: Request, service: ServiceDep) -> Response:
    record = auditing.entry(
        request, service, "delete_identity", with_model=False, identity_ids=[identity_id], decision="deleted"
    )
    if not await service.in_session(crud.delete_identity, identity_id, record):
        raise _not_found(identity_id)
    await service.gallery_written()
    return Response(status_code=204)


@router.delete(
    "/{identity_id}/faces/{face_id}",
    status_code=204,
    summary="Delete one face of an identity",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 404, 429, 503) | IDENTITY_INPUT_ERRORS,
)
async def delete_face(
    identity_id: IdentityId, face_id: FaceId, request: Request, service: ServiceDep
) -> Response:
    record = auditing.entry(
        request,
        service,
        "delete_face",
        with_model=False,
        identity_ids=[identity_id],
        decision="deleted",
        detail={"face_id": face_id},
    )
    if not await service.in_session(crud.delete_face, identity_id, face_id, record):
        if await service.in_session(crud.get_identity, identity_id) is None:
            raise _not_found(identity_id)
        raise ApiError(404, ErrorCode.FACE_NOT_FOUND, f"identity {identity_id} has no face {face_id}")
    await service.gallery_written()
    return Response(status_code=204)


@router.post(
    "/{identity_id}/faces",
    response_model=EnrollResponse,
    status_code=201,
    summary="Enroll faces",
    description="Send one or more images (repeat the multipart field `images`, or a JSON list of base64 "
    "strings). Each image is accepted (its face becomes a template) or rejected with a reason code; "
    "an image with several faces is rejected (`multiple_faces`) unless `multi_face_policy` is `largest`, "
    "which enrolls the largest face; the other images are enrolled all the same. The status is 201 when "
    "at least one face was enrolled, 200 when "
    "none was. Only the embedding is stored, never the image.",
    dependencies=[AdminScope],
    responses=NOTHING_ENROLLED | error_responses(*IMAGE_ERRORS, 404),
    openapi_extra=request_body(EnrollJSON, ENROLL_FIELDS),
)
async def enroll_faces(
    identity_id: IdentityId, request: Request, response: Response, service: ServiceDep
) -> EnrollResponse:
    started = time.perf_counter()
    if await service.in_session(crud.get_identity, identity_id) is None:
        raise _not_found(identity_id)
    uploads, options = await read_image_request(
        request, ENROLL_FIELDS, EnrollOptions, EnrollJSON, service.settings
    )
    # Enrollment never picks one face of several silently: 'largest' only when the caller asks for it.
    analysis = await service.analyser.analyse(uploads, options.multi_face_policy or "single")
    analysis.results = [_quality_gate(r, service.settings.min_enroll_quality) for r in analysis.results]
    accepted = [(i, r) for i, r in enumerate(analysis.results) if isinstance(r, AnalysedFace)]
    face_ids: dict[int, int] = {}
    record = auditing.entry(
        request,
        service,
        "enroll",
        identity_ids=[identity_id],
        decision="enrolled" if accepted else "rejected",
        detail={
            "enrolled": len(accepted),
            "rejected": [str(r.code) for r in analysis.results if isinstance(r, ImageError)],
        },
    )
    if accepted:
        templates = [
            crud.NewTemplate(r.embedding, r.face.score, r.quality.score if r.quality else None)
            for _, r in accepted
        ]
        faces = await service.in_session(
            crud.add_templates, identity_id, service.model, templates, service.codec, record
        )
        if faces is None:  # deleted while its images were analysed
            raise _not_found(identity_id)
        face_ids = {index: face.id for (index, _), face in zip(accepted, faces, strict=True)}
        await service.gallery_written()
    else:
        await service.in_session(audit.append, record)
    results = [
        _enroll_result(index, upload.filename, upload.field, result, face_ids.get(index))
        for index, (upload, result) in enumerate(zip(uploads, analysis.results, strict=True))
    ]
    counts = await service.in_session(crud.face_counts, [identity_id], service.model)
    response.status_code = 201 if accepted else 200
    return EnrollResponse(
        identity_id=identity_id,
        enrolled=len(accepted),
        rejected=len(uploads) - len(accepted),
        face_count=counts[identity_id][0],
        results=results,
        model=model_info(service.model),
        timing_ms=timing(started, analysis.timings),
        request_id=request_id_of(request.scope),
    )


def _quality_gate(result: AnalysedFace | ImageError, minimum: float) -> AnalysedFace | ImageError:
    """A face whose quality is below ``minimum`` becomes a rejection naming its weakest aspect."""
    if not isinstance(result, AnalysedFace) or result.quality is None:
        return result
    code = result.quality.reason(minimum)
    if code is None:
        return result
    metrics.IMAGES_REJECTED.labels(code).inc()
    return ImageError(
        code, f"the face's {result.quality.describe()} is below FACEVER_MIN_ENROLL_QUALITY={minimum:g}"
    )


def _enroll_result(index: int, filename: str | None, label: str, result, face_id: int | None) -> EnrollResult:
    if isinstance(result, AnalysedFace):
        return EnrollResult(
            index=index, filename=filename, accepted=True, face_id=face_id, face=face_out(result, label)
        )
    return EnrollResult(
        index=index,
        filename=filename,
        accepted=False,
        error=ErrorBody(code=result.code, message=result.message),
    )


@router.post(
    "/{identity_id}/verify",
    response_model=IdentityVerifyResponse,
    summary="Verify a probe image against one identity",
    description="The probe's face is compared with every template of the identity made by the current model; "
    "the score is the best match (highest cosine similarity). Read from the database, so always current.",
    dependencies=[VerifyScope],
    responses=error_responses(*IMAGE_ERRORS, 404, 409),
    openapi_extra=request_body(ProbeJSON, PROBE_FIELDS),
)
async def verify_identity(
    identity_id: IdentityId, request: Request, service: ServiceDep
) -> IdentityVerifyResponse:
    started = time.perf_counter()
    identity, face_ids, templates = await service.in_session(_identity_templates, identity_id, service)
    uploads, options = await read_image_request(
        request, PROBE_FIELDS, ProbeOptions, ProbeJSON, service.settings
    )
    analysis = await service.analyser.analyse(uploads, service.policy_for(options.multi_face_policy))
    (probe,) = every_face(analysis, uploads)
    best, score = best_match(probe.embedding, templates)
    threshold = service.threshold_for(options.threshold)
    verified = is_match(score, threshold)
    await auditing.record(
        request,
        service,
        "identity_verify",
        identity_ids=[identity.id],
        decision=auditing.decision(verified),
        score=score,
        threshold=threshold,
        detail={"best_face_id": face_ids[best], "templates_compared": len(face_ids)},
    )
    return IdentityVerifyResponse(
        verified=verified,
        score=score,
        probability=service.probability(score),
        threshold=threshold,
        identity=IdentityRef(id=identity.id, name=identity.name, external_id=identity.external_id),
        best_face_id=face_ids[best],
        templates_compared=len(face_ids),
        model=model_info(service.model),
        face=face_out(probe, "image"),
        timing_ms=timing(started, analysis.timings),
        request_id=request_id_of(request.scope),
    )


def _identity_templates(session, identity_id: int, service: Service):
    identity = crud.get_identity(session, identity_id)
    if identity is None:
        raise _not_found(identity_id)
    face_ids, templates = crud.templates_of(session, identity_id, service.model, service.dim, service.codec)
    if not face_ids:
        raise ApiError(
            409,
            ErrorCode.NO_ENROLLED_FACES,
            f"identity {identity_id} has no faces enrolled with the current model "
            f"({service.model.name} {service.model.version}); enroll some first",
        )
    return identity, face_ids, templates
