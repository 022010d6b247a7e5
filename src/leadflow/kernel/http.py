"""Request dependencies every domain's routes use: the application context, the caller's key and its
scopes. The kernel holds them (not ``leadflow.api``) so that a domain's ``api.py`` depends on nothing above
the kernel; the auth domain supplies the :class:`Authenticator` the application is built with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Forbidden, Unauthorized
from leadflow.kernel.principal import KEY_PREFIX as KEY_PREFIX
from leadflow.kernel.principal import Authenticator as Authenticator
from leadflow.kernel.principal import Principal as Principal
from leadflow.kernel.ratelimit import RateLimiter

bearer = HTTPBearer(auto_error=False, description="an API key: `Authorization: Bearer lf_...`")
basic = HTTPBasic(
    auto_error=False,
    description="webhook senders only: the API key as Basic auth password (`https://leadflow:lf_...@host/...`)",
)


@dataclass
class ApiState:
    ctx: AppContext
    keys: Authenticator
    api_limiter: RateLimiter
    ingest_limiter: RateLimiter


def state(request: Request) -> ApiState:
    api_state: ApiState = request.app.state.api
    return api_state


async def context(request: Request) -> AppContext:
    """The application context. ``async``, as the key checks below: FastAPI runs a plain ``def``
    dependency in a worker thread, and that hand-off cost more than the rest of a cached read."""
    return state(request).ctx


async def _admit(request: Request, key: str | None, scope: str, missing: str) -> Principal:
    """The key's principal, checked in the event loop while the key cache remembers it (a hash and a
    dictionary read), in a worker thread when the key table must be read."""
    if not key:
        raise Unauthorized(missing, code="missing_api_key")
    api = state(request)
    known, principal = api.keys.recall(key)
    if not known:
        principal = await run_in_threadpool(api.keys.authenticate, key)
    if principal is None:
        raise Unauthorized("the API key is unknown or revoked", code="invalid_api_key")
    if not principal.allows(scope):
        raise Forbidden(f"this key lacks the '{scope}' scope", code="insufficient_scope")
    api.api_limiter.check(principal.key_id)
    return principal


BEARER_MISSING = "send an API key as 'Authorization: Bearer <key>'"


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting keys whose scopes grant ``scope``: 401 without a valid key, 403 without
    the scope, 429 past the key's rate limit."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope])
    ) -> Principal:
        key = credentials.credentials if credentials is not None else None
        return await _admit(request, key, scope, BEARER_MISSING)

    dependency.__name__ = f"require_{scope}"
    return dependency


async def admit_bearer(request: Request, scope: str) -> Principal:
    """What :func:`require` does, called outside FastAPI's dependency solving (a hot read,
    :mod:`leadflow.kernel.hot_reads`): the same header parsing, key check, scope and rate limit."""
    credentials = await bearer(request)
    return await _admit(request, credentials.credentials if credentials else None, scope, BEARER_MISSING)


def url_key(credentials: HTTPBasicCredentials | None) -> str | None:
    """The API key of Basic credentials: the password, or the user name when that is the key."""
    if credentials is None:
        return None
    if not credentials.password and credentials.username.startswith(KEY_PREFIX):
        return credentials.username
    return credentials.password or None


def require_for_webhooks(scope: str) -> Callable[..., Awaitable[Principal]]:
    """:func:`require`, also admitting the key as Basic credentials — for senders that cannot add a
    header but keep credentials in the address they call (SendGrid, Postmark, Mailgun and Amazon SNS:
    ``https://leadflow:<key>@host/...``)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer, scopes=[scope]),
        login: HTTPBasicCredentials | None = Security(basic, scopes=[scope]),
    ) -> Principal:
        key = credentials.credentials if credentials is not None else url_key(login)
        missing = "send an API key as 'Authorization: Bearer <key>' or as the Basic auth password"
        return await _admit(request, key, scope, missing)

    dependency.__name__ = f"require_{scope}_for_webhooks"
    return dependency


def model_json(model: BaseModel) -> Response:
    """A model already of the route's ``response_model``, serialised once by pydantic. FastAPI would
    dump a returned model, validate the dump against the response model again and encode it: on a hot
    read that second pass is as costly as the query. The route keeps its ``response_model`` for the
    OpenAPI document; the body is the same JSON."""
    return Response(model.model_dump_json(), media_type="application/json")
