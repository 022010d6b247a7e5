"""A contact's page (``/app/contacts/{id}``) and its changes: edit (the contacts service's patch), tag
and untag, erase (GDPR, after typing the contact's email to confirm) and the export of everything held
about the person (the privacy service's JSON, as ``GET /api/v1/contacts/{id}/export``).

A merged id answers with its survivor's page. The timeline is the contact's events and CRM activities,
newest first, 30 a page.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.journeys import service as journeys
from leadflow.kernel import inputs, jsonutil
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.messaging import service as messaging
from leadflow.privacy import service as privacy
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.contact_pages import AREA, back, contact_path
from leadflow.web.crm_pages import message
from leadflow.web.render import page as render
from leadflow.web.render import protect

router = APIRouter()
TIMELINE_SIZE = 30
LIST_SIZE = 50  # messages, journey runs, deals shown
EDITABLE = ("first_name", "last_name", "email", "phone", "timezone", "lifecycle_stage", "subscription_status")
SUBSCRIPTION = ("subscribed", "unsubscribed")


def _held(web: Console, contact_id: str) -> contacts.Held:
    try:
        with web.ctx.db.read() as conn:
            return contacts.held(conn, contact_id)
    except NotFound:
        raise PageError(404, "No such contact", f"There is no contact {contact_id}.") from None


def _name(contact: contacts.Contact) -> str:
    name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
    return name or contact.email or contact.user_id or contact.id


def _timeline(web: Console, contact_id: str, cursor: str | None) -> tuple[list[Any], str | None]:
    try:
        return crm.contact_timeline(web.ctx, contact_id, cursor=cursor, limit=TIMELINE_SIZE)
    except LeadflowError:
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None


def _journeys(web: Console, ids: list[str]) -> list[dict[str, Any]]:
    runs = journeys.runs_of(web.ctx, contact_ids=ids, limit=LIST_SIZE)
    names = {j.id: j.name for j in journeys.listing(web.ctx, status=None, after=None, limit=500)}
    return [{"run": r, "journey": names.get(r.journey_id, r.journey_id)} for r in reversed(runs)]


def _deals(web: Console, email: str | None) -> list[crm.Deal]:
    if not email:
        return []
    return crm.list_deals(
        web.ctx,
        pipeline_id=None,
        stage_id=None,
        owner_id=None,
        email=email,
        status=None,
        before=None,
        limit=LIST_SIZE,
    )


def _page(
    request: Request,
    web: Console,
    viewer: Viewer,
    contact_id: str,
    status: int = 200,
    *,
    cursor: str | None = None,
    **values: Any,
) -> Response:
    held = _held(web, contact_id)
    live = held.contact_id
    with web.ctx.db.read() as conn:
        contact = contacts.get(conn, live)
        messages = messaging.messages_of(conn, held.contact_ids, before=None, limit=LIST_SIZE)
    timeline, more = _timeline(web, live, cursor)
    profile = held.profile
    return render(
        request,
        "contacts/contact.html",
        viewer,
        status,
        title=_name(contact),
        contact=contact,
        identities=profile["identities"],
        company=profile["company"],
        merged=profile["merged_contact_ids"],
        tags=held.tags,
        timeline=timeline,
        more=f"{contact_path(live)}?after={more}#timeline-h" if more else None,
        newest=f"{contact_path(live)}#timeline-h" if cursor else None,
        score=scoring.explain(web.ctx, live),
        in_segments=segments.of_contact(web.ctx, live),
        runs=_journeys(web, held.contact_ids),
        messages=messages,
        deals=_deals(web, contact.email),
        stages=contacts.STAGES,
        subscription=SUBSCRIPTION,
        traits=json.dumps(contact.traits, indent=2, sort_keys=True, ensure_ascii=False, default=str),
        shown_traits={k: _shown(v) for k, v in sorted(contact.traits.items())},
        action=contact_path(live),
        can_change=viewer.may_change(AREA),
        **values,
    )


def _shown(value: object) -> str:
    """A trait as the profile shows it: text as is, anything else (numbers, true/false, objects, lists)
    as JSON, never Python's spelling (``{'name': ...}``, ``True``)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


@router.get("/contacts/{contact_id}")
def contact_page(
    request: Request,
    contact_id: str,
    after: str | None = None,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    live = _held(web, contact_id).contact_id
    if live != contact_id:  # a merged id: its survivor's page
        return RedirectResponse(contact_path(live), status_code=303)
    return _page(request, web, viewer, live, cursor=after, done=done)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def changes(form: FormData, contact: contacts.Contact) -> dict[str, Any]:
    """The fields the edit form changed (an emptied field clears it); the traits box is a JSON object
    merged into the traits (``null`` removes a trait), sent only when it differs."""
    found: dict[str, Any] = {}
    for name in EDITABLE:
        if name not in form:
            continue
        value = _text(form, name) or None
        if value != getattr(contact, name):
            found[name] = value
    if "traits" in form:
        text = _text(form, "traits") or "{}"
        try:
            traits = json.loads(text)
            inputs.check(traits)  # no NUL, no lone surrogate, numbers in range, not nested too deep
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"traits: not JSON ({exc})") from None
        except LeadflowError as exc:
            raise ValueError(f"traits: {exc.message}") from None
        if not isinstance(traits, dict):
            raise ValueError('traits: give a JSON object, e.g. {"plan": "pro"}')
        if traits != contact.traits:
            removed = {k: None for k in contact.traits if k not in traits}
            found["traits"] = {**removed, **traits}
    return found


@router.post("/contacts/{contact_id}/edit")
async def edit(
    request: Request, contact_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    live = _held(web, contact_id).contact_id
    form = await request.form()
    with web.ctx.db.read() as conn:
        contact = contacts.get(conn, live)
    try:
        found = changes(form, contact)
        if found:
            contacts.patch(web.ctx, live, contacts.ContactPatch.model_validate(found), actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _page(request, web, viewer, live, 422, error=message(exc))
    return back(live, "edited" if found else "unchanged")


def _tag_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@router.post("/contacts/{contact_id}/tags")
async def tag(
    request: Request, contact_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Add the comma-separated tags of ``add``; remove the one of ``remove`` (each tag's button)."""
    live = _held(web, contact_id).contact_id
    form = await request.form()
    add, remove = _tag_list(_text(form, "add")), _tag_list(_text(form, "remove"))
    try:
        if not add and not remove:
            raise ValueError("type a tag to add")
        contacts.update_tags(web.ctx, live, add, remove, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _page(request, web, viewer, live, 422, error=message(exc))
    return back(live, "tagged")


@router.post("/contacts/{contact_id}/erase")
async def erase(
    request: Request, contact_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Erase the person (GDPR) once the form's ``confirm`` is their email (their id when they have
    none), in any case."""
    live = _held(web, contact_id).contact_id
    with web.ctx.db.read() as conn:
        contact = contacts.get(conn, live)
    expected = (contact.email or contact.id).lower()
    form = await request.form()
    if _text(form, "confirm").lower() != expected:
        what = "email" if contact.email else "contact id"
        return _page(request, web, viewer, live, 422, error=f"Type the contact's {what} to erase them.")
    contacts.erase(web.ctx, live, actor=viewer.actor)
    return RedirectResponse("/app/contacts?erased=1", status_code=303)


@router.get("/contacts/{contact_id}/export")
def export(
    contact_id: str, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """Everything leadflow holds about the person, as the privacy service's JSON (a download)."""
    live = _held(web, contact_id).contact_id
    body = jsonutil.dumpb(privacy.export(web.ctx, live))
    headers = {"Content-Disposition": f'attachment; filename="contact-{live}.json"'}
    return protect(Response(body, media_type="application/json", headers=headers))
