"""Every error answers ``{"error": {"code", "message"}}`` with the right status.

Tracking-API (``/v1/...``) errors also carry ``code`` and ``message`` at the top level with
``"success": false``: that is where Segment's client libraries look for them.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException

from leadflow.kernel import errors

log = logging.getLogger(__name__)

STATUS: dict[type[errors.LeadflowError], int] = {
    errors.BadRequest: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Invalid: 422,
    errors.RateLimited: 429,
    errors.Misconfigured: 500,
    errors.Upstream: 502,
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
}


def status_of(error: errors.LeadflowError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 400


def error_response(
    request: Request,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    if request.url.path.startswith("/v1/"):
        body.update(success=False, code=code, message=message)
    metrics = getattr(request.app.state, "ctx", None)
    if metrics is not None:
        metrics.metrics.http_errors.labels(code=code).inc()
    return JSONResponse(body, status_code=status, headers=headers)


async def _leadflow_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LeadflowError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.RateLimited) else None
    return error_response(request, status_of(exc), exc.code, exc.message, exc.details, headers)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return f"{location}: {error.get('msg')}" if location else str(error.get("msg"))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
        for e in exc.errors()
    ]
    message = "; ".join(_describe(e) for e in exc.errors()) or "invalid request"
    code = (
        "invalid_json" if any(e.get("type") == "json_invalid" for e in exc.errors()) else "validation_error"
    )
    status = 400 if code == "invalid_json" else 422
    return error_response(request, status, code, message, problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "error")
    return error_response(
        request, exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
    )


async def _statement_error(request: Request, exc: Exception) -> JSONResponse:
    """A domain error raised while binding a parameter (a datetime beyond the calendar, say) is still
    that error; SQLAlchemy only wrapped it."""
    assert isinstance(exc, StatementError)
    if isinstance(exc.orig, errors.LeadflowError):
        return await _leadflow_error(request, exc.orig)
    return await unexpected(request, exc)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(
        request, 500, "internal_error", "something went wrong on our side; it has been logged"
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.LeadflowError, _leadflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StatementError, _statement_error)
    app.add_exception_handler(Exception, unexpected)
