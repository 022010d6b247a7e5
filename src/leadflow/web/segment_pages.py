"""The Segments pages: the list (with member counts), a segment's editor with the visual rule builder,
create / edit / delete, the live preview the builder calls, and a segment's members (paginated, CSV).

The editor's form posts the rule as JSON in a textarea, so a segment is made and changed without
JavaScript (typing the JSON); ``static/segment_builder.js`` draws that JSON as a tree of groups
(all / any, each optionally negated) and conditions, writes the tree back into the textarea on every
edit, and asks ``POST /app/segments/preview`` (JSON, ``X-CSRF-Token``) for the count and a sample,
bounded to :data:`PREVIEW_SECONDS`. Every read and change goes through ``leadflow.segments.service``
(the API's functions), changes audited as ``user:<email>``; a bad rule answers 422 with its paths.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from leadflow.contacts import service as contacts
from leadflow.kernel import inputs, pagination
from leadflow.kernel.errors import Conflict, LeadflowError, NotFound
from leadflow.segments import service as segments
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.crm_pages import message
from leadflow.web.render import page as render

router = APIRouter()
AREA = "segments"
PAGE_SIZE = 50
PREVIEW_SECONDS = 5.0  # the live preview's time bound (it runs on every edit)
PREVIEW_SAMPLE = 10
MAX_RULE_BYTES = 200_000

#: What the builder offers, by field kind (the rule language's own table: segments.rules).
FIELDS = [
    *[(name, kind) for name, kind in segments.CONTACT_COLUMNS.items()],
    *[(name, "number") for name in segments.SCORE_COLUMNS if name != "score.total"],
    ("score_band", "text"),
    ("tags", "tags"),
    *[(f"company.{name}", kind) for name, kind in segments.COMPANY_COLUMNS.items()],
]
PREFIXED = [("traits.", "trait"), ("consent.", "consent"), ("company.traits.", "company trait")]


def language() -> dict[str, Any]:
    """The rule language as the builder needs it (fields, operators by kind, stages, windows)."""
    return {
        "fields": [{"name": n, "kind": k} for n, k in FIELDS],
        "prefixed": [{"prefix": p, "label": label} for p, label in PREFIXED],
        "ops": {kind: sorted(ops) for kind, ops in segments.ALLOWED_BY_KIND.items()},
        "property_ops": sorted(segments.ALLOWED_BY_KIND["json"] - {"anniversary_today"}),
        "count_ops": list(segments.COUNT_OPS),
        "when_ops": ["before", "after", "within_last", "more_than_ago"],
        "stages": list(contacts.STAGES),
        "emails": list(segments.EMAIL_EVENTS),
    }


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _rules(raw: str) -> dict[str, Any]:
    """The rule JSON a form or the builder sent: an object, or a ValueError saying where it broke."""
    if len(raw) > MAX_RULE_BYTES:
        raise ValueError(f"the rule is longer than {MAX_RULE_BYTES:,} characters")
    try:
        found = json.loads(raw)
        inputs.check(found)  # no NUL, no lone surrogate, numbers in range, not nested too deep
    except json.JSONDecodeError as exc:
        raise ValueError(f"the rule is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise ValueError("the rule nests too deep") from None
    except LeadflowError as exc:
        raise ValueError(f"the rule: {exc.message}") from None
    if not isinstance(found, dict):
        raise ValueError('the rule is a JSON object such as {"all": [...]}')
    return found


def _problems(exc: Exception) -> list[dict[str, str]]:
    details = getattr(exc, "details", None)
    if isinstance(details, list):
        return [d for d in details if isinstance(d, dict)]
    return []


def segment_or_404(web: Console, segment_id: str) -> segments.Segment:
    try:
        return segments.get(web.ctx, segment_id)
    except NotFound:
        raise PageError(404, "No such segment", f"There is no segment {segment_id}.") from None


def _others(web: Console, but: str | None) -> list[segments.Segment]:
    return [s for s in segments.listing(web.ctx, after=None, limit=500) if s.id != but]


@router.get("/segments")
def listing(
    request: Request,
    cursor: str | None = None,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    try:
        after = pagination.text_at(cursor, "after")
    except (LeadflowError, AttributeError):
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None
    found = segments.listing(web.ctx, after=after, limit=PAGE_SIZE + 1)
    items, next_cursor = pagination.paginate(found, PAGE_SIZE, lambda s: {"after": s.id})
    return render(
        request,
        "segments/list.html",
        viewer,
        title="Segments",
        segments=items,
        more=f"/app/segments?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
        first="/app/segments" if cursor else None,
        done=done,
        can_change=viewer.may_change(AREA),
    )


def _editor(
    request: Request,
    web: Console,
    viewer: Viewer,
    segment: segments.Segment | None,
    status: int = 200,
    **values: Any,
) -> Response:
    if "rules_text" not in values:
        rules = segment.rules if segment else {"all": [{"field": "email", "op": "is_set"}]}
        values["rules_text"] = json.dumps(rules, indent=2) if rules is not None else ""
    if "form" not in values:  # what the form shows: the segment's, or what was sent and refused
        values["form"] = {"name": segment.name, "description": segment.description} if segment else {}
    return render(
        request,
        "segments/edit.html",
        viewer,
        status,
        title=f"Segment: {segment.name}" if segment else "New segment",
        segment=segment,
        language=language(),
        others=[{"id": s.id, "name": s.name} for s in _others(web, segment.id if segment else None)],
        can_change=viewer.may_change(AREA),
        **values,
    )


@router.get("/segments/new")
def new(request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)) -> Response:
    return _editor(request, web, viewer, None)


@router.get("/segments/{segment_id}")
def edit(
    request: Request,
    segment_id: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _editor(request, web, viewer, segment_or_404(web, segment_id), done=done)


def _refused(
    request: Request,
    web: Console,
    viewer: Viewer,
    segment: segments.Segment | None,
    form: FormData,
    exc: Exception,
) -> Response:
    status = 409 if isinstance(exc, Conflict) else 422
    values = {
        "name": _text(form, "name"),
        "description": _text(form, "description"),
        "kind": _text(form, "kind"),
    }
    return _editor(
        request,
        web,
        viewer,
        segment,
        status,
        error=message(exc),
        problems=_problems(exc),
        rules_text=str(form.get("rules") or ""),
        form=values,
    )


@router.post("/segments")
async def create(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """A dynamic segment from its rule JSON, or (kind ``static``) an empty list."""
    form = await request.form()
    try:
        kind = _text(form, "kind") or "dynamic"
        body: dict[str, Any] = {"name": _text(form, "name"), "kind": kind}
        body["description"] = _text(form, "description") or None
        if kind == "dynamic":
            body["rules"] = _rules(_text(form, "rules"))
        made = segments.create(web.ctx, segments.SegmentCreate.model_validate(body), actor=viewer.actor)
    except (LeadflowError, ValidationError, ValueError) as exc:
        return _refused(request, web, viewer, None, form, exc)
    return RedirectResponse(f"/app/segments/{made.id}?done=created", status_code=303)


@router.post("/segments/preview")
async def preview(
    request: Request, viewer: Viewer = Depends(change(AREA, own=True)), web: Console = Depends(console)
) -> Response:
    """The builder's live count and sample: ``{"rules": {...}}`` in, ``{"count", "sample"}`` out; a bad
    rule answers 422 ``{"code", "message", "problems"}`` (a viewer may preview: nothing is saved)."""
    try:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        inputs.check(body)  # no NUL, no lone surrogate, numbers in range, not nested too deep
        if not isinstance(body, dict) or not isinstance(body.get("rules"), dict):
            raise ValueError('send {"rules": {...}}: the rule as a JSON object')
        found = segments.preview(web.ctx, body["rules"], sample=PREVIEW_SAMPLE, timeout=PREVIEW_SECONDS)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return _json_error(400, "bad_json", "the request body is not JSON")
    except ValueError as exc:
        return _json_error(400, "bad_request", str(exc))
    except LeadflowError as exc:
        status = 404 if isinstance(exc, NotFound) else 422
        return _json_error(status, exc.code, exc.message, _problems(exc))
    sample = [
        {
            "id": c.id,
            "email": c.email,
            "name": " ".join(p for p in (c.first_name, c.last_name) if p),
            "stage": c.lifecycle_stage,
        }
        for c in found.contacts
    ]
    return JSONResponse({"count": found.count, "sample": sample}, headers={"Cache-Control": "no-store"})


def _json_error(status: int, code: str, text: str, problems: list[dict[str, str]] | None = None) -> Response:
    body = {"code": code, "message": text, "problems": problems or []}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


@router.post("/segments/{segment_id}")
async def update(
    request: Request, segment_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Rename, describe and (dynamic segments) change the rule."""
    segment = segment_or_404(web, segment_id)
    form = await request.form()
    try:
        body: dict[str, Any] = {
            "name": _text(form, "name"),
            "description": _text(form, "description") or None,
        }
        if segment.kind == "dynamic":
            body["rules"] = _rules(_text(form, "rules"))
        segments.update(web.ctx, segment_id, segments.SegmentPatch.model_validate(body), actor=viewer.actor)
    except (LeadflowError, ValidationError, ValueError) as exc:
        return _refused(request, web, viewer, segment, form, exc)
    return RedirectResponse(f"/app/segments/{segment_id}?done=saved", status_code=303)


@router.post("/segments/{segment_id}/delete")
async def delete(
    request: Request, segment_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    segment = segment_or_404(web, segment_id)
    try:
        segments.delete(web.ctx, segment_id, actor=viewer.actor)
    except LeadflowError as exc:
        return _editor(request, web, viewer, segment, 409, error=message(exc))
    return RedirectResponse("/app/segments?done=deleted", status_code=303)
