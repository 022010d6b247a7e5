"""``/f/``: the hosted forms as people and browsers meet them (no API key).

* ``GET /f/{id}``: the form as a small accessible page; the UTM fields come from this address's query
  (and a script fills them from the embedding page when the page is framed).
* ``GET /f/{id}/embed.js`` and ``/f/{id}/embed.html``: the script that injects the form into
  ``<div data-leadflow-form="{id}">`` and posts it with ``fetch``, and the plain HTML form.
* ``POST /f/{id}``: urlencoded (a browser without JavaScript) or JSON (the script, a server). A JSON or
  ``Accept: application/json`` post is answered ``{"ok": true, ...}`` or the error as JSON; a browser is
  redirected (``303``) or shown the thank-you page, or the form again with its errors (``422``).
* ``OPTIONS /f/{id}``: the CORS preflight. CORS headers name the request's origin only when the form
  lists it among its allowed origins.
* ``GET /f/confirm/{token}``: the double opt-in link.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from leadflow.capture import confirm, forms, render, submit
from leadflow.capture.schemas import UTM_FIELDS, FormFields
from leadflow.kernel import inputs
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError, RateLimited
from leadflow.kernel.http import context

router = APIRouter(prefix="/f", tags=["hosted forms"])

STATUS = {"invalid_submission": 422, "origin_not_allowed": 403, "form_not_found": 404, "rate_limited": 429}
HTML_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
#: What the pages answer besides their success (declared, so FastAPI adds no validation schema of its own).
PAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no such form (or link)", "content": ERROR},
    422: {"description": "invalid input", "content": ERROR},
}
POST_ERRORS: dict[int | str, dict[str, Any]] = {
    **PAGE_ERRORS,
    303: {"description": "a browser post: on to the form's redirect address"},
    400: {"description": "a body that is not JSON", "content": ERROR},
    403: {"description": "posted from a site the form does not allow (origin_not_allowed)", "content": ERROR},
    413: {"description": "a body over LEADFLOW_FORM_MAX_BODY_BYTES", "content": ERROR},
    422: {
        "description": "the form's errors by field (a browser without JavaScript: the form again)",
        "content": ERROR,
    },
    429: {
        "description": "too many posts from this address",
        "content": ERROR,
        "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
    },
}


def _form(ctx: AppContext, form_id: str) -> FormFields:
    with ctx.db.read() as conn:
        return forms.fields_of(forms.row(conn, form_id))


def _cors(form: FormFields | None, request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if form is None or not origin or origin not in form.allowed_origins:
        return {"Vary": "Origin"}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _status(error: LeadflowError) -> int:
    return STATUS.get(error.code, 400)


def _error_json(error: LeadflowError, headers: dict[str, str]) -> JSONResponse:
    body: dict[str, Any] = {"error": {"code": error.code, "message": error.message}}
    if error.details is not None:
        body["error"]["details"] = error.details
    if isinstance(error, RateLimited):
        headers = {**headers, "Retry-After": str(error.retry_after)}
    return JSONResponse(body, status_code=_status(error), headers=headers)


@router.get(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="The double opt-in page: a button that confirms",
    responses={**PAGE_ERRORS, 400: {"description": "a bad or expired link", "content": ERROR}},
)
def confirmation_page(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    """Changes nothing (see :mod:`leadflow.capture.confirm`): the button posts to the same address."""
    if not confirm.pending(ctx, token):
        return _confirmed()
    text = "Press the button to start receiving our email."
    html = render.confirm_button("Confirm your subscription", text)
    return HTMLResponse(html, headers=HTML_HEADERS)


@router.post(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="Confirm a double opt-in",
    responses={**PAGE_ERRORS, 400: {"description": "a bad or expired link", "content": ERROR}},
)
def confirm_subscription(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    confirm.confirm(ctx, token)
    return _confirmed()


def _confirmed() -> HTMLResponse:
    text = "Thank you: your subscription is confirmed."
    return HTMLResponse(render.message("Subscription confirmed", text), headers=HTML_HEADERS)


@router.get(
    "/{form_id}",
    response_class=HTMLResponse,
    summary="The hosted form, as an HTML page",
    responses=PAGE_ERRORS,
)
def show(form_id: str, request: Request, ctx: AppContext = Depends(context)) -> HTMLResponse:
    form = _form(ctx, form_id)
    query = request.query_params
    hidden = {name: query[name][:255] for name in UTM_FIELDS if query.get(name)}
    if referrer := request.headers.get("referer"):
        hidden["referrer"] = referrer[:2000]
    page = render.hosted(form, f"{ctx.settings.public_url}/f/{form_id}", hidden=hidden)
    return HTMLResponse(page, headers=HTML_HEADERS)


@router.get(
    "/{form_id}/embed.js",
    summary="The script snippet's body: injects and posts the form",
    responses=PAGE_ERRORS,
)
def embed_js(form_id: str, ctx: AppContext = Depends(context)) -> Response:
    body = render.embed_js(_form(ctx, form_id), form_id, f"{ctx.settings.public_url}/f/{form_id}")
    headers = {"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/{form_id}/embed.html",
    response_class=HTMLResponse,
    summary="The plain HTML form, to copy",
    responses=PAGE_ERRORS,
)
def embed_html(form_id: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    _, html = render.snippets(_form(ctx, form_id), form_id, ctx.settings.public_url)
    return HTMLResponse(html, headers={"Cache-Control": "public, max-age=300"})


@router.options(
    "/{form_id}", status_code=204, summary="CORS preflight for posting the form", responses=PAGE_ERRORS
)
def preflight(form_id: str, request: Request, ctx: AppContext = Depends(context)) -> Response:
    try:
        form = _form(ctx, form_id)
    except LeadflowError as error:
        return _error_json(error, {})
    headers = _cors(form, request)
    if "Access-Control-Allow-Origin" in headers:
        headers.update(
            {
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Accept",
                "Access-Control-Max-Age": "600",
            }
        )
    return Response(status_code=204, headers=headers)


def _values(content_type: str, body: bytes) -> dict[str, Any]:
    """The posted fields: a JSON object, or urlencoded pairs (the last of a repeated name)."""
    kind = content_type.partition(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json") or (not kind and body.startswith(b"{")):
        found = inputs.loads(body) if body else {}
        if not isinstance(found, dict):
            raise submit.SubmissionInvalid({"": "the body is a JSON object of the form's fields"})
        return found
    if kind in ("application/x-www-form-urlencoded", ""):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise submit.SubmissionInvalid({"": "the body is not UTF-8"}) from None
        pairs = parse_qsl(text, keep_blank_values=True)
        for name, value in pairs:
            inputs.check_text(name, "a field name")
            inputs.check_text(value, f"the field {name[:40]!r}")
        return dict(pairs)
    raise submit.SubmissionInvalid({"": f"send the form urlencoded or as JSON, not {kind[:60]!r}"})


@router.post("/{form_id}", summary="Submit the form (urlencoded or JSON)", responses=POST_ERRORS)
async def post(form_id: str, request: Request, ctx: AppContext = Depends(context)) -> Response:
    content_type = request.headers.get("content-type", "")
    wants_json = "json" in content_type.lower() or "application/json" in request.headers.get("accept", "")
    try:
        form: FormFields | None = await run_in_threadpool(_form, ctx, form_id)
    except LeadflowError as error:
        return _error_json(error, {})
    headers = _cors(form, request)
    values: dict[str, Any] = {}
    try:
        values = _values(content_type, await request.body())
        posted = submit.Posted(
            values=values,
            ip=request.client.host if request.client else None,
            origin=request.headers.get("origin"),
            referer=request.headers.get("referer"),
            user_agent=request.headers.get("user-agent"),
        )
        outcome = await run_in_threadpool(submit.submit, ctx, form_id, posted)
    except LeadflowError as error:
        if wants_json or form is None:
            return _error_json(error, headers)
        return _refused_page(ctx, form, form_id, error, values)
    if wants_json:
        answer = {"ok": True, "message": outcome.form.thank_you, "redirect_url": outcome.form.redirect_url}
        return JSONResponse(answer, headers=headers)
    if outcome.form.redirect_url:
        return RedirectResponse(outcome.form.redirect_url, status_code=303)
    return HTMLResponse(render.message(outcome.form.name, outcome.form.thank_you), headers=HTML_HEADERS)


def _refused_page(
    ctx: AppContext, form: FormFields, form_id: str, error: LeadflowError, values: dict[str, Any]
) -> HTMLResponse:
    """A browser without JavaScript: the form again, with what was typed and what is wrong."""
    if isinstance(error, submit.SubmissionInvalid):
        kept = {k: v for k, v in values.items() if isinstance(v, str | bool)}
        hidden = {k: str(v) for k, v in kept.items() if k in (*UTM_FIELDS, "page_url", "referrer")}
        action = f"{ctx.settings.public_url}/f/{form_id}"
        page = render.hosted(form, action, values=kept, errors=error.errors, hidden=hidden)
        return HTMLResponse(page, status_code=422, headers=HTML_HEADERS)
    headers = dict(HTML_HEADERS)
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after)
    return HTMLResponse(render.message(form.name, error.message), status_code=_status(error), headers=headers)
