"""The console's email pages: templates and layouts (list, create, edit), a template's preview for a
chosen contact, and a test send. Broadcasts and the per-message reports are in :mod:`.email_reports`.

* The **preview** is rendered by messaging's renderer with the contact's profile (``messaging.preview``)
  and shown in a sandboxed ``<iframe>`` whose document is served by ``…/preview`` under its own policy
  (no script, no form, no plugin; the email's inline styles and remote images allowed, as a mail client
  would; framed by the console only). The page itself shows the subject and the text part. A template
  that does not render for that contact (a syntax error, a missing variable, over a resource limit) or a
  contact that does not exist answers a 4xx with the reason, never a 500.
* *Preview draft* posts the editor's fields into the frame without saving them.
* A **test send** queues the template, rendered for the chosen contact, to an address through the
  messaging outbox (an internal notice: not tracked, not counted in the numbers).

Reading is the ``email`` area (admin, marketer, viewer); changing it (saving, test sends) is refused to
viewers. Every change is audited as ``user:<email>``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from leadflow.kernel.errors import Conflict, LeadflowError, NotFound
from leadflow.messaging import service as messaging
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.crm_pages import message
from leadflow.web.render import page as render

router = APIRouter()
AREA = "email"
KINDS = ("marketing", "transactional")
# The preview document: the email's own inline styles and images, nothing that runs or posts.
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https: http:; font-src data: https:; "
    "form-action 'none'; frame-ancestors 'self'; sandbox"
)


def template_path(key: str, **query: str) -> str:
    path = f"/app/email/templates/{quote(key, safe='')}"
    kept = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _raw(form: FormData, name: str) -> str | None:
    """A body field as typed (Liquid and HTML keep their whitespace); empty is none."""
    value = form.get(name)
    return value if isinstance(value, str) and value.strip() else None


def _fields(form: FormData) -> dict[str, Any]:
    return {
        "name": _text(form, "name"),
        "kind": _text(form, "kind") or "marketing",
        "topic": _text(form, "topic") or None,
        "layout": _text(form, "layout") or None,
        "subject": _text(form, "subject"),
        "html": _raw(form, "html") or "",
        "text": _raw(form, "text"),
    }


def status_of(exc: Exception) -> int:
    """The page's status for a refused input: 404 for what does not exist, 409 for a taken key, else 422."""
    if isinstance(exc, NotFound):
        return 404
    return 409 if isinstance(exc, Conflict) else 422


def _template(web: Console, key: str) -> messaging.Template:
    try:
        return messaging.get_template(web.ctx, key)
    except NotFound:
        raise PageError(404, "No such template", f"There is no email template {key}.") from None


def _choices(web: Console) -> dict[str, Any]:
    with web.ctx.db.read() as conn:
        topics = messaging.topics(conn)
    return {"kinds": KINDS, "topics": topics, "layouts": messaging.layouts(web.ctx)}


@router.get("/email")
def overview(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """Templates and layouts (the first 500 of each)."""
    return render(
        request,
        "email/index.html",
        viewer,
        title="Email",
        templates=messaging.templates(web.ctx, after=None, limit=500),
        layouts=messaging.layouts(web.ctx),
        path=template_path,
        can_change=viewer.may_change(AREA),
    )


@router.get("/email/templates/new")
def new_template(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    if not viewer.may_change(AREA):
        raise PageError(403, "Not allowed", f"Your role ({viewer.role}) cannot change this.")
    return render(request, "email/new.html", viewer, title="New template", values={}, **_choices(web))


@router.post("/email/templates")
async def create_template(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    form = await request.form()
    values = {"key": _text(form, "key"), **_fields(form)}
    try:
        created = messaging.create_template(
            web.ctx, messaging.TemplateCreate.model_validate(values), actor=viewer.actor
        )
    except (LeadflowError, ValidationError, ValueError) as exc:
        return render(
            request,
            "email/new.html",
            viewer,
            status_of(exc),
            title="New template",
            values=values,
            error=message(exc),
            **_choices(web),
        )
    return RedirectResponse(template_path(created.key, done="created"), status_code=303)


def _template_page(
    request: Request,
    web: Console,
    viewer: Viewer,
    template: messaging.Template,
    *,
    status: int = 200,
    contact: str = "",
    **values: Any,
) -> Response:
    """The editor, the preview for ``contact`` (subject and text here, the HTML in the frame) and the
    test-send form. A preview that fails answers the page with its reason (404 / 422)."""
    shown: messaging.Preview | None = None
    problem = None
    if contact and "error" not in values:
        try:
            shown = messaging.preview(web.ctx, template.id, contact=contact)
        except LeadflowError as exc:
            problem, status = message(exc), status_of(exc)
    return render(
        request,
        "email/template.html",
        viewer,
        status,
        title=template.name,
        template=template,
        contact=contact,
        preview=shown,
        problem=problem,
        frame=f"{template_path(template.key)}/preview?{urlencode({'contact': contact})}" if shown else None,
        action=template_path(template.key),
        can_change=viewer.may_change(AREA),
        **_choices(web),
        **values,
    )


@router.get("/email/templates/{key}")
def template(
    request: Request,
    key: str,
    contact: str = "",
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    found = _template(web, key)
    return _template_page(request, web, viewer, found, contact=contact.strip()[:320], done=done)


@router.post("/email/templates/{key}")
async def save_template(
    request: Request, key: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Save the editor's fields (a new revision); back to the page with the preview contact kept."""
    found = _template(web, key)
    form = await request.form()
    contact = _text(form, "contact")[:320]
    try:
        fields = messaging.TemplateFields.model_validate(_fields(form))
        messaging.update_template(web.ctx, found.id, fields, actor=viewer.actor)
    except (LeadflowError, ValidationError, ValueError) as exc:
        draft = found.model_copy(update={k: v for k, v in _fields(form).items() if v is not None})
        return _template_page(request, web, viewer, draft, status=422, contact=contact, error=message(exc))
    return RedirectResponse(template_path(found.key, contact=contact, done="saved"), status_code=303)


def _document(html: str, status: int = 200) -> Response:
    response = HTMLResponse(html, status_code=status)
    response.headers["Content-Security-Policy"] = PREVIEW_POLICY
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _problem(text: str, status: int) -> Response:
    """A failed preview, as the frame's document."""
    body = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _document(
        f'<!doctype html><meta charset="utf-8"><title>Preview failed</title>'
        f'<p role="alert" data-error="preview">This template cannot be rendered: {body}</p>',
        status,
    )


def _preview_document(web: Console, key: str, contact: str, draft: Any = None) -> Response:
    try:
        shown = messaging.preview(web.ctx, key, contact=contact or None, draft=draft)
    except LeadflowError as exc:
        return _problem(message(exc), status_of(exc))
    return _document(shown.html)


@router.get("/email/templates/{key}/preview")
def preview(
    key: str, contact: str = "", _: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """The saved template's HTML rendered for ``contact``: the frame's document."""
    _template(web, key)
    return _preview_document(web, key, contact.strip()[:320])


@router.post("/email/templates/{key}/preview")
async def preview_draft(
    request: Request, key: str, _: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """The editor's fields, not saved, rendered for the contact into the frame."""
    _template(web, key)
    form = await request.form()
    try:
        draft = messaging.TemplateFields.model_validate(_fields(form))
    except ValidationError as exc:
        return _problem(message(exc), 422)
    return _preview_document(web, key, _text(form, "contact")[:320], draft)


@router.post("/email/templates/{key}/test")
async def send_test(
    request: Request, key: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Queue a test of the saved template to an address, rendered for the chosen contact."""
    found = _template(web, key)
    form = await request.form()
    contact, to = _text(form, "contact")[:320], _text(form, "to")[:320]
    try:
        messaging.send_test(web.ctx, found.id, to=to, contact=contact or None, actor=viewer.actor)
    except LeadflowError as exc:
        return _template_page(
            request, web, viewer, found, status=status_of(exc), contact=contact, error=message(exc)
        )
    return RedirectResponse(template_path(found.key, contact=contact, done="test"), status_code=303)


# --- layouts ----------------------------------------------------------------------------------------


@router.get("/email/layouts/{key}")
def layout(
    request: Request,
    key: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    """A layout's editor (``new``: an empty one)."""
    if key == "new":
        if not viewer.may_change(AREA):
            raise PageError(403, "Not allowed", f"Your role ({viewer.role}) cannot change this.")
        values: dict[str, Any] = {"html": "<html><body>{{ content }}</body></html>"}
    else:
        try:
            values = messaging.get_layout(web.ctx, key).model_dump()
        except NotFound:
            raise PageError(404, "No such layout", f"There is no email layout {key}.") from None
    return render(
        request,
        "email/layout.html",
        viewer,
        title=values.get("name") or "New layout",
        values=values,
        creating=key == "new",
        can_change=viewer.may_change(AREA),
        done=done,
    )


@router.post("/email/layouts")
async def save_layout(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Create or replace a layout (its key names it); templates using it change with it."""
    form = await request.form()
    values = {
        "key": _text(form, "key"),
        "name": _text(form, "name"),
        "html": _raw(form, "html") or "",
        "text": _raw(form, "text"),
    }
    try:
        saved = messaging.save_layout_as(web.ctx, messaging.LayoutFields(**values), actor=viewer.actor)
    except (LeadflowError, ValidationError, ValueError) as exc:
        return render(
            request,
            "email/layout.html",
            viewer,
            422,
            title=values["name"] or "New layout",
            values=values,
            creating=_text(form, "creating") == "1",
            can_change=True,
            error=message(exc),
        )
    return RedirectResponse(f"/app/email/layouts/{quote(saved.key, safe='')}?done=saved", status_code=303)
