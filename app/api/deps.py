"""FastAPI dependencies: the service, and API-key authentication with scopes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from facever.app.auth import Principal
from facever.app.core import security
from facever.app.errors import ApiError
from facever.app.service import Service
from facever.model.errors import ErrorCode

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="An API key from `facever keys create --scope admin|verify`. "
    "Scope verify: verify and identify. Scope admin: also manage identities and enroll faces.",
)


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def require_scope(needed: security.Scope):
    """A dependency admitting requests whose key grants ``needed`` (admin grants verify too)."""

    def check(
        request: Request, service: ServiceDep, key: Annotated[str | None, Security(api_key_header)]
    ) -> Principal:
        limits = service.authenticator.limits
        principal = service.authenticator.authenticate(key)
        if principal is None and not key:
            # Not a guess, so not counted: a page opened before its key is typed (20 tabs behind one
            # proxy) must not lock that address out.
            raise ApiError(401, ErrorCode.MISSING_API_KEY, "send an API key in the X-API-Key header")
        if principal is None:
            address = request.client.host if request.client else "unknown"
            wait = limits.failed_auth.retry_after(address)
            if wait is not None:
                raise ApiError(
                    429,
                    ErrorCode.TOO_MANY_FAILED_AUTH,
                    f"too many requests from this address failed to authenticate; retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
            limits.failed_auth.failed(address)
            raise ApiError(401, ErrorCode.INVALID_API_KEY, "the API key is not valid")
        if key and principal.source != "auth-disabled":
            wait = limits.key_rate.take(security.hash_key(key))
            if wait is not None:
                raise ApiError(
                    429,
                    ErrorCode.RATE_LIMITED,
                    f"this API key is over its rate of {limits.key_rate.rate:g} requests a second; "
                    f"retry in {wait} s",
                    {"Retry-After": str(wait)},
                )
        if not security.grants(principal.scope, needed):
            raise ApiError(
                403,
                ErrorCode.INSUFFICIENT_SCOPE,
                f"this needs a key with scope {needed}; the key has scope {principal.scope}",
            )
        request.state.principal = principal  # for the audit trail (facever.app.api.auditing)
        return principal

    return check


VerifyScope = Depends(require_scope("verify"))
AdminScope = Depends(require_scope("admin"))
