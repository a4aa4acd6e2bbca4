"""The audit records of the API's operations (facever.app.audit): who made the request, and its id."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from facever.app import audit
from facever.app.audit import Actor, AuditEntry, Operation
from facever.app.request_id import request_id_of
from facever.app.service import Service


def actor_of(request: Request) -> Actor:
    """The API key that made the request (set by the scope check, which every audited route has)."""
    principal = request.state.principal
    return Actor(principal.key_id, principal.name)


def entry(
    request: Request, service: Service, operation: Operation, with_model: bool = True, **fields: Any
) -> AuditEntry:
    return AuditEntry(
        operation=operation,
        actor=actor_of(request),
        model=service.model if with_model else None,
        request_id=request_id_of(request.scope),
        **fields,
    )


async def record(request: Request, service: Service, operation: Operation, **fields: Any) -> None:
    """Append a decision's record (verify, identify) before the answer goes out."""
    await service.in_session(audit.append, entry(request, service, operation, **fields))


def decision(verified: bool) -> str:
    return "match" if verified else "no_match"
