"""The links in emails, and where providers report bounces and complaints.

No authentication on the recipient-facing routes: the signed token in the path is the credential (see
:mod:`leadflow.messaging.build.tokens`), and each route accepts only tokens signed for its own purpose.

* ``GET /t/o/{token}``: the open pixel, a 43-byte transparent GIF, ``no-store``. A bad token still gets
  the GIF (never a broken image in someone's mail) and records nothing.
* ``GET /t/c/{token}``: records the click and redirects (302) to the URL signed into the token, and only
  there (no open redirect); a bad token is ``400 invalid_link``.
* ``GET /t/h/{token}``: the hidden honeypot link: an empty page, recorded as a machine hit.
* ``GET /u/{token}``: a confirmation page (a link alone never unsubscribes: scanners follow links); once
  unsubscribed (from all marketing, or from the message's topic), "you are unsubscribed" with a
  resubscribe button. ``POST /u/{token}``: RFC 8058 one-click unsubscribe (``List-Unsubscribe=One-Click``,
  urlencoded or multipart) or the confirmation form (any body): no cookies, no login, no redirect, ``200``.
* ``POST /u/{token}/resubscribe``: the button: takes the unsubscribe back (:func:`subscription.resubscribe`).
  The same signed token is the only credential; no cookie or session is involved, so a forged
  cross-site form has nothing to ride on (and needs the token it would have to steal first).
* ``GET|POST /p/{token}``: the preference centre.
* ``POST /api/v1/email/feedback/{provider}`` and ``POST /api/v1/email/inbound`` (scope ``write``):
  provider webhooks and raw bounce/complaint emails, applied by :func:`tracking.apply_feedback`.

The recipient-facing routes are left out of the OpenAPI document: they are links in emails, not API.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import collapse_rfc2231_value
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from leadflow.events.service import read_body
from leadflow.kernel import inputs
from leadflow.kernel.brand import brand
from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.errors import BadRequest, NotFound
from leadflow.kernel.http import Principal, context, require_for_webhooks
from leadflow.messaging.build import links
from leadflow.messaging.build.compose import PREFERENCES, UNSUBSCRIBE
from leadflow.messaging.build.tokens import BadToken, Tokens
from leadflow.messaging.feedback import bounces, pages, signatures, sns, subscription, tracking

__all__ = ["PIXEL", "router"]

router = APIRouter(tags=["email feedback"])

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_STORE = {"Cache-Control": "no-store"}
# The token in a page's URL is its credential: keep it out of caches, referrers and search engines.
PAGE_HEADERS = {**NO_STORE, "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
FORM_LIMIT = 64 * 1024
PROVIDERS = ("leadflow", "sendgrid", "postmark", "mailgun", "ses")
RAW_MESSAGE_TYPES = ("message/rfc822", "text/plain")
ONE_CLICK = "One-Click"
# Everything printable in ASCII but the space: a Location keeps the signed URL byte for byte, and only
# what a header cannot carry (non-ASCII, spaces, control characters) is percent-encoded.
_LOCATION_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))

T = TypeVar("T")


class Applied(BaseModel):
    applied: int


_TOKENS: Slot[Tokens] = Slot("messaging.public.tokens", lambda ctx: Tokens(ctx.secret_key, ctx.clock))


def _tokens(ctx: AppContext) -> Tokens:
    return ctx.get(_TOKENS)


def _invalid() -> BadRequest:
    return BadRequest("This link is not valid", code="invalid_link")


def _message_id(ctx: AppContext, purpose: str, token: str) -> str:
    """The message id in an unsubscribe or preferences token; ``400 invalid_link`` for anything else."""
    try:
        payload = _tokens(ctx).load(purpose, token)
    except BadToken:
        raise _invalid() from None
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], str):
        raise _invalid()
    return payload[0]


def _visitor(request: Request) -> dict[str, str | None]:
    return {
        "user_agent": request.headers.get("user-agent"),
        "ip": request.client.host if request.client else None,
    }


async def _call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await run_in_threadpool(function, *args, **kwargs)


# --- tracking ------------------------------------------------------------------------------------


@router.get("/t/o/{token}", include_in_schema=False, response_class=Response, summary="Open pixel")
def open_pixel(token: str, request: Request, ctx: AppContext = Depends(context)) -> Response:
    try:
        message_id = links.decode_open(_tokens(ctx), token)
    except BadToken:
        message_id = None
    if message_id is not None:
        tracking.record_open(ctx, message_id, **_visitor(request))
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


@router.get(
    "/t/c/{token}", include_in_schema=False, response_class=Response, status_code=302, summary="Tracked link"
)
def click(token: str, request: Request, ctx: AppContext = Depends(context)) -> Response:
    try:
        message_id, url = links.decode_click(_tokens(ctx), token)
    except BadToken:
        raise _invalid() from None
    tracking.record_click(ctx, message_id, url, **_visitor(request))
    return Response(status_code=302, headers={**NO_STORE, "Location": quote(url, safe=_LOCATION_SAFE)})


@router.get(
    "/t/h/{token}", include_in_schema=False, response_class=Response, summary="Honeypot link (machines only)"
)
def honeypot(token: str, request: Request, ctx: AppContext = Depends(context)) -> Response:
    try:
        message_id = links.decode_honeypot(_tokens(ctx), token)
    except BadToken:
        message_id = None
    if message_id is not None:
        tracking.record_honeypot(ctx, message_id, **_visitor(request))
    return Response(b"", media_type="text/plain", headers=NO_STORE)


# --- unsubscribe and preferences -----------------------------------------------------------------


def _preferences_link(ctx: AppContext, message_id: str, depth: int = 1) -> str:
    """Relative (``/u/x`` -> ``../p/y``), so it works wherever the app is mounted; ``depth``: how many
    path segments below ``/u/`` the page is."""
    return "../" * depth + f"p/{_tokens(ctx).sign(PREFERENCES, [message_id])}"


def _brand(ctx: AppContext) -> str:
    return brand(ctx.settings).name


def _state(ctx: AppContext, message_id: str) -> subscription.PreferenceView | None:
    try:
        return subscription.preferences(ctx, message_id)
    except NotFound:
        return None


def _unsubscribed_page(
    ctx: AppContext, token: str, message_id: str, view: subscription.PreferenceView | None
) -> str:
    """The "you are unsubscribed" page, with the resubscribe button (``/u/{token}/resubscribe``,
    relative)."""
    topic = None
    if view is not None and view.all_marketing:  # only the message's topic is off
        topic = next((t.name for t in view.topics if t.key == view.topic), None)
    return pages.unsubscribed(
        brand=_brand(ctx),
        address=view.email if view else None,
        preferences_url=_preferences_link(ctx, message_id),
        resubscribe_url=f"{token}/resubscribe" if view is not None else None,
        topic=topic,
    )


@router.get(
    "/u/{token}",
    include_in_schema=False,
    response_class=HTMLResponse,
    summary="Unsubscribe: confirmation page",
)
def unsubscribe_page(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    message_id = _message_id(ctx, UNSUBSCRIBE, token)
    view = _state(ctx, message_id)
    if view is not None and view.unsubscribed:
        return HTMLResponse(_unsubscribed_page(ctx, token, message_id, view), headers=PAGE_HEADERS)
    html = pages.unsubscribe_confirm(
        brand=_brand(ctx),
        address=view.email if view else None,
        preferences_url=_preferences_link(ctx, message_id),
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.post(
    "/u/{token}",
    include_in_schema=False,
    response_class=HTMLResponse,
    summary="Unsubscribe (RFC 8058 one-click)",
)
async def unsubscribe(token: str, request: Request, ctx: AppContext = Depends(context)) -> HTMLResponse:
    """``List-Unsubscribe=One-Click`` from a mailbox provider, or the confirmation form: either way the
    recipient asked. Answered ``200`` with a page, never a redirect."""
    message_id = await _call(_message_id, ctx, UNSUBSCRIBE, token)
    form = parse_form(request.headers.get("content-type"), await read_body(request, FORM_LIMIT))
    source = "one_click" if ONE_CLICK in form.get("List-Unsubscribe", ()) else "unsubscribe_page"
    await _call(subscription.unsubscribe, ctx, message_id, source=source)
    view = await _call(_state, ctx, message_id)
    return HTMLResponse(_unsubscribed_page(ctx, token, message_id, view), headers=PAGE_HEADERS)


@router.post(
    "/u/{token}/resubscribe",
    include_in_schema=False,
    response_class=HTMLResponse,
    summary="Resubscribe (the unsubscribe page's button)",
)
def resubscribe(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    message_id = _message_id(ctx, UNSUBSCRIBE, token)
    view = subscription.resubscribe(ctx, message_id, source="resubscribe_page")
    html = pages.resubscribed(
        brand=_brand(ctx), address=view.email, preferences_url=_preferences_link(ctx, message_id, depth=2)
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/p/{token}", include_in_schema=False, response_class=HTMLResponse, summary="Preference centre")
def preference_page(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    view = subscription.preferences(ctx, _message_id(ctx, PREFERENCES, token))
    return HTMLResponse(pages.preference_centre(brand=_brand(ctx), view=view), headers=PAGE_HEADERS)


@router.post(
    "/p/{token}", include_in_schema=False, response_class=HTMLResponse, summary="Preference centre: save"
)
async def save_preferences(token: str, request: Request, ctx: AppContext = Depends(context)) -> HTMLResponse:
    """The form: ``topic=<key>`` for each topic ticked (unticked ones are absent), and
    ``unsubscribe_all`` when marketing as a whole is refused."""
    message_id = await _call(_message_id, ctx, PREFERENCES, token)
    form = parse_form(request.headers.get("content-type"), await read_body(request, FORM_LIMIT))
    current = await _call(subscription.preferences, ctx, message_id)
    ticked = set(form.get("topic", ()))
    topics = {topic.key: topic.key in ticked for topic in current.topics}
    view = await _call(subscription.set_preferences, ctx, message_id, topics, "unsubscribe_all" not in form)
    html = pages.preference_centre(brand=_brand(ctx), view=view, saved=True)
    return HTMLResponse(html, headers=PAGE_HEADERS)


def parse_form(content_type: str | None, body: bytes) -> dict[str, list[str]]:
    """Fields of an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body (file parts are
    skipped); any other body is read as urlencoded, and what does not parse gives no fields."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    if kind == "multipart/form-data" and content_type:
        return _multipart(content_type, body)
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


def _multipart(content_type: str, body: bytes) -> dict[str, list[str]]:
    head = b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    fields: dict[str, list[str]] = {}
    if not message.is_multipart():
        return fields
    for part in message.get_payload():
        if not isinstance(part, Message):
            continue
        name = part.get_param("name", header="content-disposition")
        if not name or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        text = (
            payload.decode(part.get_content_charset() or "utf-8", "replace")
            if isinstance(payload, bytes)
            else ""
        )
        fields.setdefault(collapse_rfc2231_value(name), []).append(text)
    return fields


# --- bounces and complaints ----------------------------------------------------------------------

_RAW = {"type": "string", "format": "binary"}


@router.post(
    "/api/v1/email/feedback/{provider}",
    response_model=Applied,
    summary="Provider bounce webhook",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {}}}}},
)
async def provider_feedback(
    provider: str,
    request: Request,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require_for_webhooks("write")),
) -> Applied:
    """A bounce/complaint webhook of ``leadflow``, ``sendgrid``, ``postmark``, ``mailgun`` or ``ses``
    (the JSON body as the provider sends it). The key may travel as Basic credentials in the address the
    provider calls. For ``ses``, every Amazon SNS message's signature is verified (``403
    invalid_sns_signature`` otherwise) and a subscription confirmation is confirmed (see
    :mod:`leadflow.messaging.feedback.sns`)."""
    if provider not in PROVIDERS:
        raise NotFound(f"unknown feedback provider {provider!r}", code="unknown_provider")
    body = await read_body(request, ctx.settings.api_max_body_bytes)
    try:
        payload = inputs.loads(body)  # whatever the content type (SNS posts text/plain)
    except BadRequest:
        raise BadRequest(f"the {provider} payload is not JSON", code="invalid_feedback") from None
    seal = signatures.check(provider, body, payload, request.headers, ctx.settings, ctx.clock.now())
    if provider == "ses":  # Amazon SNS: its signature verified before anything else (403 if not)
        seal = await _call(sns.verify, ctx, payload)
        subscribe = sns.confirmation(payload)
        if subscribe is not None:
            await _call(sns.confirm, subscribe, ctx.settings)
            return Applied(applied=0)
    try:
        items = bounces.parse_provider(provider, payload)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_feedback") from None
    return Applied(applied=await _call(tracking.apply_feedback, ctx, _accepted(items), seal=seal))


@router.post(
    "/api/v1/email/inbound",
    response_model=Applied,
    summary="Bounce or complaint email",
    openapi_extra={"requestBody": {"required": True, "content": {"message/rfc822": {"schema": _RAW}}}},
)
async def inbound(
    request: Request,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require_for_webhooks("write")),
) -> Applied:
    """A raw RFC 5322 message (``message/rfc822`` or ``text/plain``): a DSN (RFC 3464) or an ARF abuse
    report (RFC 5965). Anything else is accepted and applies nothing."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in RAW_MESSAGE_TYPES:
        raise HTTPException(415, "send the message as message/rfc822 (or text/plain)")
    items = bounces.parse_dsn(await read_body(request, ctx.settings.api_max_body_bytes))
    return Applied(applied=await _call(tracking.apply_feedback, ctx, _accepted(items)))


def _accepted(items: list[bounces.Feedback]) -> list[bounces.Feedback]:
    """Addresses and diagnostics decoded from a report (an SNS message inside the JSON, a MIME part):
    text leadflow accepts, or ``422 invalid_text`` (see :mod:`leadflow.kernel.inputs`)."""
    for item in items:
        for text in (item.email, item.detail, item.message_id or ""):
            inputs.check_text(text, "the report")
    return items
