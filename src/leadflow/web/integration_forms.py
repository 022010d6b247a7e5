"""The hosted forms of the Integrations area: the list (with each form's submissions), a form's page
(its definition, submissions, the hosted address and the **embed snippets** — a script, or plain HTML —
in read-only boxes with a Copy button, ``static/integrations.js``), and creating or changing a form by
its JSON definition (the API's ``FormFields``; checked by the capture domain as the API checks it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.capture import service as capture
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.integration_kit import AREA, PAGE_SIZE, json_of, message, not_found, pretty, text
from leadflow.web.render import page as render

router = APIRouter()
EXAMPLE = pretty(
    {
        "name": "Newsletter",
        "fields": [
            {"name": "email", "label": "Email", "type": "email", "required": True},
            {"name": "first_name", "label": "First name"},
        ],
        "consent": {"text": "I agree to receive the newsletter."},
        "double_opt_in": True,
        "thank_you": "Thank you! Check your inbox.",
    }
)


def _path(form_id: str) -> str:
    return f"/app/integrations/forms/{form_id}"


def _listing(request: Request, viewer: Viewer, web: Console, status: int = 200, **values: Any) -> Response:
    after = request.query_params.get("after") or None
    if after is not None and len(after) > 26:
        raise PageError(400, "Bad link", "This page link is not one the console made.")
    found = capture.listing(web.ctx, after=after, limit=PAGE_SIZE + 1)
    more = f"/app/integrations/forms?after={found[PAGE_SIZE - 1].id}" if len(found) > PAGE_SIZE else None
    found = found[:PAGE_SIZE]
    counts = capture.submission_counts(web.ctx, [f.id for f in found])
    return render(
        request,
        "integrations/forms.html",
        viewer,
        status,
        title="Forms",
        forms=found,
        counts=counts,
        more=more,
        first="/app/integrations/forms" if after else None,
        example=EXAMPLE,
        can_change=viewer.may_change(AREA),
        path=_path,
        **values,
    )


@router.get("/integrations/forms")
def forms(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _listing(request, viewer, web)


@router.post("/integrations/forms")
async def create(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    raw = text(await request.form(), "definition")
    try:
        data = capture.FormFields.model_validate(json_of(raw, "the definition"))
        made = capture.create(web.ctx, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _listing(request, viewer, web, 422, error=message(exc), definition=raw)
    return RedirectResponse(f"{_path(made.id)}?done=created", status_code=303)


def _form(web: Console, form_id: str) -> capture.Form:
    try:
        return capture.get(web.ctx, form_id)
    except NotFound as exc:
        raise not_found("form", exc) from None


def _form_page(
    request: Request, viewer: Viewer, web: Console, form_id: str, status: int = 200, **values: Any
) -> Response:
    form = _form(web, form_id)
    script, html = capture.embed(web.ctx, form_id)
    definition = form.model_dump(mode="json", include=set(capture.FormFields.model_fields))
    return render(
        request,
        "integrations/form.html",
        viewer,
        status,
        title=f"Form: {form.name}",
        form=form,
        submissions=capture.submission_counts(web.ctx, [form_id]).get(form_id, 0),
        script=script,
        html=html,
        definition=values.pop("definition", None) or pretty(definition),
        can_change=viewer.may_change(AREA),
        action=_path(form_id),
        **values,
    )


@router.get("/integrations/forms/{form_id}")
def form_page(
    request: Request,
    form_id: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _form_page(request, viewer, web, form_id, done=done)


@router.post("/integrations/forms/{form_id}")
async def update(
    request: Request, form_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Replace the definition with the posted JSON (fields left out keep their value)."""
    _form(web, form_id)
    raw = text(await request.form(), "definition")
    try:
        patch = capture.FormPatch.model_validate(json_of(raw, "the definition"))
        capture.update(web.ctx, form_id, patch, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _form_page(request, viewer, web, form_id, 422, error=message(exc), definition=raw)
    return RedirectResponse(f"{_path(form_id)}?done=saved", status_code=303)
