"""The Segment HTTP Tracking API: ``POST /v1/identify|track|page|screen|group|alias|batch``.

Any Segment client library works by pointing its ``host`` at leadflow. The write key (an API key with
the ``ingest`` scope) is accepted as HTTP Basic user name, as a Bearer token, or as ``writeKey`` in the
body. The answer ``200 {"success": true}`` is sent only after the events are committed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request, Response, Security
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from leadflow.events import ingest, schemas
from leadflow.events.body import read_body
from leadflow.kernel import inputs
from leadflow.kernel.errors import BadRequest, Forbidden, Unauthorized
from leadflow.kernel.http import ApiState, Principal, state

router = APIRouter(tags=["tracking"])
write_key = HTTPBasic(
    auto_error=False, description="the write key as user name, empty password (or `writeKey` in the body)"
)

SUCCESS = b'{"success":true}'


class Success(BaseModel):
    success: bool = True


def _header_key(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            user, _, _ = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("malformed Basic credentials", code="invalid_write_key") from None
        return user
    raise Unauthorized(f"unsupported authorization scheme {scheme!r}", code="invalid_write_key")


def authenticate(api: ApiState, request: Request, body: Any) -> Principal:
    """The caller's key: from the Authorization header, else ``writeKey`` in the body."""
    candidates = [_header_key(request)]
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        candidates.append(body["writeKey"])
    keys = [key for key in candidates if key]
    if not keys:
        raise Unauthorized(
            "send the write key as Basic auth user name or as 'writeKey'", code="missing_write_key"
        )
    for key in keys:
        principal = api.keys.authenticate(key)
        if principal is not None:
            if not principal.allows("ingest"):
                raise Forbidden("this key lacks the 'ingest' scope", code="insufficient_scope")
            return principal
    raise Unauthorized("the write key is unknown or revoked", code="invalid_write_key")


def parse_json(body: bytes) -> Any:
    """The body as JSON that leadflow accepts (:func:`inputs.loads`); every refusal is a 400 here."""
    try:
        return inputs.loads(body)
    except inputs.InputError as exc:
        raise BadRequest(exc.message, code=exc.code) from None


async def _accept(request: Request, kind: str | None) -> Response:
    api = state(request)
    limit = schemas.MAX_REQUEST_BYTES if kind is None else schemas.MAX_MESSAGE_BYTES
    body = await read_body(request, limit)
    try:
        payload = parse_json(body)
    except BadRequest:
        header_key = _header_key(request)
        if header_key is not None and api.keys.authenticate(header_key) is None:
            raise Unauthorized("the write key is unknown or revoked", code="invalid_write_key") from None
        raise
    principal = authenticate(api, request, payload)
    api.ingest_limiter.check(principal.key_id)
    received_at = api.ctx.clock.now()
    if kind is None:
        rows = schemas.batch_rows(payload, received_at, body_bytes=len(body))
    else:
        rows = [schemas.single_row(kind, payload, received_at)]
    if rows:
        ctx = api.ctx
        await run_in_threadpool(ingest.store, ctx.db, ctx.signals, ctx.metrics, rows)
    return Response(SUCCESS, media_type="application/json")


def _doc(kind: str) -> dict[str, Any]:
    required = {"track": ["event"], "group": ["groupId"], "alias": ["previousId", "userId"]}.get(kind, [])
    message = {
        "type": "object",
        "description": "A Segment Spec message; needs userId or anonymousId (alias: previousId and userId).",
        "properties": {
            "userId": {"type": "string"},
            "anonymousId": {"type": "string"},
            "messageId": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "context": {"type": "object"},
            "integrations": {"type": "object"},
            "properties": {"type": "object"},
            "traits": {"type": "object"},
            "event": {"type": "string"},
            "name": {"type": "string"},
            "groupId": {"type": "string"},
            "previousId": {"type": "string"},
            "writeKey": {"type": "string"},
        },
        "required": required,
    }
    schema = (
        message
        if kind != "batch"
        else {
            "type": "object",
            "properties": {
                "batch": {"type": "array", "maxItems": 2500, "items": message},
                "context": {"type": "object"},
                "integrations": {"type": "object"},
                "writeKey": {"type": "string"},
            },
            "required": ["batch"],
        }
    )
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _register(kind: str) -> None:
    async def endpoint(
        request: Request, _: HTTPBasicCredentials | None = Security(write_key, scopes=["ingest"])
    ) -> Response:
        return await _accept(request, None if kind == "batch" else kind)

    endpoint.__name__ = f"segment_{kind}"
    router.add_api_route(
        f"/v1/{kind}",
        endpoint,
        methods=["POST"],
        response_model=Success,
        summary=f"Segment {kind}",
        description=(
            "Segment-compatible; 32 KB per message, 500 KB and 2500 messages per batch. "
            "Answers after the events are stored durably; processing is asynchronous."
        ),
        openapi_extra=_doc(kind),
    )


for _kind in ("identify", "track", "page", "screen", "group", "alias", "batch"):
    _register(_kind)
