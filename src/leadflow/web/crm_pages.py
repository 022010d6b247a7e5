"""The CRM's lead pages: the leads list (by status, owner, search; paginated) and a lead's page (profile,
status, owner, timeline, tasks, logging a call / note / meeting / task, the contact's deals).

A ``sales`` user sees and changes only the leads they own (another's lead answers the 403 page); an
``admin`` sees all; a ``viewer`` reads and gets no form. Every change goes through the CRM service
functions the API uses, audited as ``user:<email>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.crm import service as crm
from leadflow.kernel import pagination
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.render import page as render

router = APIRouter()
AREA = "crm"
PAGE_SIZE = 50
LOGGED_KINDS = ("call", "note", "meeting", "task")  # what the lead page's "log" form offers


def lead_path(email: str) -> str:
    return f"/app/crm/leads/{quote(email, safe='@')}"


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _owner_filter(viewer: Viewer, asked: str | None) -> str | None:
    """A sales user's leads are their own; the others may filter by any owner (or none)."""
    return viewer.user.id if viewer.role == "sales" else (asked or None)


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    try:
        found = pagination.decode(cursor)
        return None if found is None else (datetime.fromisoformat(found["t"]), str(found["id"]))
    except (LeadflowError, KeyError, TypeError, ValueError):
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None


def _users(web: Console) -> list[crm.User]:
    return crm.list_users(web.ctx, after=None, active=True, limit=500)


@router.get("/crm/leads")
def leads(
    request: Request,
    status: str | None = None,
    owner: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    status = status if status in crm.LEAD_STATUSES else None
    query = (q or "").strip()[:200] or None
    where = crm.LeadFilter(
        status=[status] if status else None, owner_id=_owner_filter(viewer, owner), q=query
    )
    found = crm.search_leads(web.ctx, where, before=_position(cursor), limit=PAGE_SIZE + 1)
    items, next_cursor = pagination.paginate(
        found, PAGE_SIZE, lambda lead: {"t": lead.created_at.isoformat(), "id": lead.contact_id}
    )
    kept = {k: v for k, v in (("status", status), ("owner", owner), ("q", query)) if v}
    more = f"/app/crm/leads?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None
    first = f"/app/crm/leads?{urlencode(kept)}" if cursor else None
    users = _users(web)
    return render(
        request,
        "crm/leads.html",
        viewer,
        title="Leads",
        leads=items,
        statuses=crm.LEAD_STATUSES,
        users=users,
        names={u.id: u.name for u in users},
        chosen=status,
        owner=owner,
        q=query,
        more=more,
        first=first,
        path=lead_path,
    )


def _lead(web: Console, viewer: Viewer, email: str) -> crm.Lead:
    try:
        lead = crm.get_lead(web.ctx, email)
    except NotFound:
        raise PageError(404, "No such lead", f"There is no lead {email}.") from None
    if viewer.role == "sales" and lead.owner_id != viewer.user.id:
        raise PageError(403, "Not your lead", "Sales users open only the leads they own.")
    return lead


def _lead_page(
    request: Request, web: Console, viewer: Viewer, email: str, status: int = 200, **values: Any
) -> Response:
    lead = _lead(web, viewer, email)
    timeline, _ = crm.lead_timeline(web.ctx, email, cursor=None, limit=50)
    tasks = crm.list_activities(
        web.ctx, email=email, owner_id=None, kind="task", open_tasks=False, after=None, limit=100
    )
    deals = crm.list_deals(  # a sales user's own deals only, as on the board
        web.ctx,
        pipeline_id=None,
        stage_id=None,
        owner_id=viewer.user.id if viewer.role == "sales" else None,
        email=email,
        status=None,
        before=None,
        limit=100,
    )
    users = _users(web)
    return render(
        request,
        "crm/lead.html",
        viewer,
        status,
        title=_name(lead),
        lead=lead,
        timeline=timeline,
        tasks=tasks,
        deals=deals,
        users=users,
        names={u.id: u.name for u in users},
        statuses=crm.LEAD_STATUSES,
        needs_reason=sorted(crm.LEAD_NEEDS_REASON),
        kinds=LOGGED_KINDS,
        action=lead_path(email),
        can_change=viewer.may_change(AREA),
        **values,
    )


def _name(lead: crm.Lead) -> str:
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p)
    return name or lead.email or lead.contact_id


@router.get("/crm/leads/{email}")
def lead(
    request: Request,
    email: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _lead_page(request, web, viewer, email, done=done)


def _back(email: str, done: str) -> Response:
    return RedirectResponse(f"{lead_path(email)}?done={done}", status_code=303)


@router.post("/crm/leads/{email}/status")
async def set_status(
    request: Request, email: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Set the status; ``unqualified`` and ``lost`` need the reason (the field is ignored for others)."""
    _lead(web, viewer, email)
    form = await request.form()
    new, reason = _text(form, "status"), _text(form, "reason")
    try:
        body = {"status": new, "reason": (reason or None) if new in crm.LEAD_NEEDS_REASON else None}
        data = crm.LeadStatusChange.model_validate(body)
        crm.change_lead_status(web.ctx, email, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _lead_page(request, web, viewer, email, 422, error=message(exc))
    return _back(email, "status")


@router.post("/crm/leads/{email}/owner")
async def set_owner(
    request: Request, email: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    _lead(web, viewer, email)
    form = await request.form()
    try:
        data = crm.LeadOwnerChange.model_validate({"owner_id": _text(form, "owner") or None})
        crm.assign_lead(web.ctx, email, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _lead_page(request, web, viewer, email, 422, error=message(exc))
    return _back(email, "owner")


def _due(value: str) -> datetime | None:
    """A ``datetime-local`` value (read as UTC: the console stores and shows UTC)."""
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


@router.post("/crm/leads/{email}/activities")
async def log(
    request: Request, email: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Log a call, note or meeting (now), or add a task with its due date."""
    _lead(web, viewer, email)
    form = await request.form()
    kind = _text(form, "kind")
    try:
        if kind not in LOGGED_KINDS:
            raise ValueError(f"choose one of {', '.join(LOGGED_KINDS)}")
        values: dict[str, Any] = {"email": email, "kind": kind}
        values["subject"] = _text(form, "subject") or None
        values["body"] = _text(form, "body") or None
        if kind == "task":
            values["due_at"] = _due(_text(form, "due"))
        crm.log_activity(web.ctx, crm.ActivityCreate.model_validate(values), actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _lead_page(request, web, viewer, email, 422, error=message(exc))
    return _back(email, "logged")


@router.post("/crm/leads/{email}/tasks/{task_id}")
async def task_done(
    request: Request,
    email: str,
    task_id: int,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """The task's "done" checkbox: checked marks it done now, unchecked reopens it."""
    lead = _lead(web, viewer, email)
    try:
        task = crm.get_activity(web.ctx, task_id)
    except NotFound:
        raise PageError(404, "No such task", f"There is no task {task_id}.") from None
    if task.contact_id != lead.contact_id or task.kind != "task":
        raise PageError(404, "No such task", f"{email} has no task {task_id}.")
    form = await request.form()
    data = crm.ActivityFields(done=form.get("done") is not None)
    crm.change_activity(web.ctx, task_id, data, actor=viewer.actor)
    return _back(email, "task")


def message(exc: Exception) -> str:
    """A domain error's message, or pydantic's first complaint (without its URL)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)
