"""Request dependencies: the application context, the caller's key and its scopes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadflow.auth.service import KeyCache, Principal
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Forbidden, Unauthorized
from leadflow.kernel.ratelimit import RateLimiter

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer lf_...`")


@dataclass
class ApiState:
    ctx: AppContext
    keys: KeyCache
    api_limiter: RateLimiter
    ingest_limiter: RateLimiter


def state(request: Request) -> ApiState:
    api_state: ApiState = request.app.state.api
    return api_state


def context(request: Request) -> AppContext:
    return state(request).ctx


def require(scope: str) -> Callable[..., Principal]:
    """A dependency admitting keys whose scopes grant ``scope``: 401 without a valid key, 403 without
    the scope, 429 past the key's rate limit."""

    def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope])
    ) -> Principal:
        if credentials is None:
            raise Unauthorized("send an API key as 'Authorization: Bearer <key>'", code="missing_api_key")
        api = state(request)
        principal = api.keys.authenticate(credentials.credentials)
        if principal is None:
            raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
        if not principal.allows(scope):
            raise Forbidden(f"this key lacks the '{scope}' scope", code="insufficient_scope")
        api.api_limiter.check(principal.key_id)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency
