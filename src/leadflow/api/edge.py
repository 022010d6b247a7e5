"""The edge: what enters the API is checked once, here, and no error ever drops a connection.

:class:`InputGuard` applies :mod:`leadflow.kernel.inputs` to every request of the REST API (``/api/``),
the tracking API (``/v1/``), incoming webhooks (``/hooks/``: a JSON body is checked here as a REST
one, and parsed again by the route once its signature holds) and hosted forms (``/f/``: their address
here; a post's body is read by :mod:`leadflow.capture.public_api` with the same function) before a
route sees it:

* the path and every query parameter (name and value) hold no NUL and no lone surrogate;
* a REST JSON body (``application/json``, ``application/*+json`` or no content type) is parsed
  strictly by :func:`inputs.loads`; the route then reads the same bytes. A body that is not JSON at all
  goes on to the route, which refuses it its own way. The tracking API parses its own body (after gzip)
  with the same function;
* an operation that reads JSON (:mod:`leadflow.api.media`, decided once at start-up) sent a body of
  another media type (``text/plain``, a form, ...) answers ``415 unsupported_media_type``: FastAPI would
  not parse it and answer a confusing ``422``. Sent without a content type, its body is read as JSON
  (the route is told ``application/json``: FastAPI 0.16x would no longer parse it otherwise). The API
  needs an ``Authorization`` header, which no cross-site form can send, so this opens no CSRF hole.

REST answers ``422`` (``400 invalid_json`` for what is not JSON), the tracking API ``400`` with Segment's
top-level fields. Nothing is read from the database before the refusal, so nothing is stored.

:class:`Unexpected` answers an unhandled exception with ``500 internal_error`` and *returns*: Starlette's
own handler re-raises after answering, and uvicorn then closes the keep-alive connection.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import parse_qsl

from fastapi import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow.api import errors, media
from leadflow.kernel import inputs
from leadflow.kernel.errors import LeadflowError

GUARDED = ("/api/", "/v1/", "/hooks/", "/f/", "/calendar/")  # /calendar/: a booking's signed links
UNSUPPORTED = "unsupported_media_type"


def check_location(scope: Scope) -> None:
    """The path and query parameters: no NUL, no lone surrogate (both are decoded first)."""
    inputs.check_text(scope["path"], "the path")
    query = scope.get("query_string", b"")
    if not query:
        return
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        inputs.check_text(name, "a query parameter name")
        inputs.check_text(value, f"the query parameter {name!r}")


async def _answer(scope: Scope, receive: Receive, send: Send, error: LeadflowError) -> None:
    request = Request(scope)
    status = errors.status_of(error)
    if scope["path"].startswith(("/v1/", "/hooks/")) and status == 422:
        status = 400  # the tracking API answers every refusal with 400, as Segment does; webhooks too
    response = errors.error_response(request, status, error.code, error.message, error.details)
    await response(scope, receive, send)


class InputGuard:
    """Refuse what :mod:`leadflow.kernel.inputs` does not accept, before any route runs.

    ``routes`` is the app's route list: read when the middleware is built, at start-up, once every
    router is included."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.bodies = media.Bodies(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(GUARDED):
            await self.app(scope, receive, send)
            return
        try:
            check_location(scope)
        except LeadflowError as error:
            await _answer(scope, receive, send, error)
            return
        if not scope["path"].startswith(("/api/", "/hooks/")):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type") or None
        sent_json = content_type is None or media.is_json(content_type)
        reads_json = self.bodies.reads_json(scope["method"], scope["path"])
        if not sent_json and not reads_json:
            await self.app(scope, receive, send)  # a CSV, a form, a raw report: the route's own rules
            return
        body = await _read(receive)
        if body is None:
            return  # the client left, or the body limit has already answered 413
        if body and content_type is None and reads_json:
            scope = _declared_json(scope)
        elif body and not sent_json:
            assert content_type is not None
            await _unsupported(scope, receive, send, content_type)
            return
        if body:
            try:
                inputs.loads(body)
            except LeadflowError as error:
                if error.code != inputs.INVALID_JSON or _lenient_json(body):
                    await _answer(scope, receive, send, error)
                    return
        await self.app(scope, _replay(body, receive), send)


def _declared_json(scope: Scope) -> Scope:
    headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", media.JSON.encode())]}


async def _unsupported(scope: Scope, receive: Receive, send: Send, content_type: bytes) -> None:
    kind = content_type.decode("latin-1").partition(";")[0].strip()
    message = f"this operation reads JSON: send the body as {media.JSON}, not {kind!r}"
    response = errors.error_response(Request(scope), 415, UNSUPPORTED, message)
    await response(scope, receive, send)


def _lenient_json(body: bytes) -> bool:
    """Whether Python's own parser, which FastAPI uses, would take what :func:`inputs.loads` refused as
    not JSON (``NaN``, ``Infinity``, UTF-16): refused here. What it would not take either goes on to the
    route, which answers it as it always has (``invalid_json``; a webhook's own code)."""
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class Unexpected:
    """Answer any exception no handler took with ``500 internal_error``, logged, keeping the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half an answer is out: only closing the connection can tell the client
            request = Request(scope)
            response = await errors.unexpected(request, exc)
            await response(scope, receive, send)
