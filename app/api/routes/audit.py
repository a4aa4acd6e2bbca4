"""GET /v1/audit: the audit trail, newest first, a page at a time (admin scope). Read-only: no route
changes or deletes a record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from facever.app import audit
from facever.app.api.deps import AdminScope, ServiceDep
from facever.app.api.responses import IDENTITY_INPUT_ERRORS, error_responses
from facever.app.db.models import AuditRecord
from facever.app.schemas import AuditPage, AuditRecordOut, ModelInfo, StoredText, UTCTime

router = APIRouter(prefix="/v1", tags=["audit"])

MAX_ID = 2**63 - 1


def _out(record: AuditRecord) -> AuditRecordOut:
    model = None
    if record.model_name is not None and record.model_version is not None:
        model = ModelInfo(name=record.model_name, version=record.model_version)
    return AuditRecordOut(
        id=record.id,
        at=record.at,
        operation=record.operation,
        api_key_id=record.api_key_id,
        api_key_name=record.api_key_name,
        identity_ids=record.identity_ids,
        decision=record.decision,
        score=record.score,
        threshold=record.threshold,
        model=model,
        request_id=record.request_id,
        detail=record.detail,
    )


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Read the audit trail",
    description="One record per verify, identity verify, identify, identity creation, enrollment, deletion "
    "and erasure by retention: time, API key (id and name), operation, identities, decision, score, "
    "threshold, model and request id; never an image or a template. Newest first; pass `next_before_id` "
    "as `before_id` for the next page. Records cannot be changed or deleted through the API.",
    dependencies=[AdminScope],
    responses=error_responses(401, 403, 429) | IDENTITY_INPUT_ERRORS,
)
def read_audit(
    service: ServiceDep,
    since: Annotated[UTCTime | None, Query(description="records at or after this time")] = None,
    until: Annotated[UTCTime | None, Query(description="records before this time")] = None,
    operation: Annotated[
        audit.Operation | None,
        Query(description="only this operation"),
    ] = None,
    identity_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only records involving this identity")
    ] = None,
    api_key_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only records of this key (facever keys list)")
    ] = None,
    api_key_name: Annotated[
        StoredText | None, Query(max_length=300, description="only records of this key name")
    ] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="only records older than this id")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditPage:
    where = audit.AuditFilter(since, until, operation, identity_id, api_key_id, api_key_name)
    with service.session() as session:
        records = audit.page(session, where, before_id, limit + 1)
    more = len(records) > limit
    records = records[:limit]
    return AuditPage(items=[_out(r) for r in records], next_before_id=records[-1].id if more else None)
