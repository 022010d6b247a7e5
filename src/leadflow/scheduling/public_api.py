"""The booked person's links: ``/calendar/r/{token}`` (reschedule), ``/calendar/c/{token}`` (cancel) —
a page with a button on ``GET`` (which changes nothing: mail scanners follow links), the change on
``POST`` — and ``/calendar/ics/{token}``, the invitation as ``text/calendar``."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from fastapi import APIRouter, Depends, Form
from fastapi.responses import HTMLResponse, Response

from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.http import context
from leadflow.scheduling import booking, ics, notify, tokens
from leadflow.scheduling.models import BOOKED
from leadflow.scheduling.schemas import zone_of

router = APIRouter(prefix="/calendar", tags=["calendar links"])
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a bad or expired link", "content": ERROR},
    404: {"description": "no such booking", "content": ERROR},
    422: {"description": "invalid input", "content": ERROR},
}
POST_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"description": "a body too large", "content": ERROR},
}
STYLE = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem}"


def _page(title: str, body: str) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{STYLE}</style></head>'
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, headers=HEADERS)


def _booking(ctx: AppContext, purpose: str, token: str) -> Any:
    booking_id = tokens.booking_of(ctx, purpose, token)
    with ctx.db.read() as conn:
        return booking.booking_row(conn, booking_id)


@router.get("/c/{token}", response_class=HTMLResponse, summary="The cancel page", responses=ERRORS)
def cancel_page(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    found = _booking(ctx, tokens.CANCEL, token)
    if found.status != BOOKED:
        return _page("Cancelled", "<p>This consultation is cancelled.</p>")
    body = (
        f"<p>{escape(found.service)} on {escape(notify.when(found))} ({escape(found.tz)}).</p>"
        '<form method="post"><button type="submit">Cancel this consultation</button></form>'
    )
    return _page("Cancel your consultation?", body)


@router.post("/c/{token}", response_class=HTMLResponse, summary="Cancel the booking", responses=POST_ERRORS)
def cancel(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    booking.cancel(ctx, tokens.booking_of(ctx, tokens.CANCEL, token), reason="canceled by the invitee")
    return _page("Cancelled", "<p>Your consultation is cancelled.</p>")


@router.get("/r/{token}", response_class=HTMLResponse, summary="The reschedule page", responses=ERRORS)
def reschedule_page(token: str, ctx: AppContext = Depends(context)) -> HTMLResponse:
    found = _booking(ctx, tokens.RESCHEDULE, token)
    if found.status != BOOKED:
        return _page("Cancelled", "<p>This consultation is cancelled.</p>")
    now = ctx.clock.now()
    slots = booking.available_slots(ctx, found.service, now, now + timedelta(days=14), found.tz).data
    zone = zone_of(found.tz)
    options = "".join(
        f'<label><input type="radio" name="start" value="{escape(s.start.isoformat(), quote=True)}"'
        " required> "
        f"{escape(s.start.astimezone(zone).strftime('%a %d %b %H:%M'))}</label><br>"
        for s in slots
        if found.user_id in s.consultant_ids
    )
    body = (
        f"<p>Now: {escape(found.service)} on {escape(notify.when(found))} ({escape(found.tz)}).</p>"
        f'<form method="post">{options or "<p>No free time in the next two weeks.</p>"}'
        '<button type="submit">Reschedule</button></form>'
    )
    return _page("Reschedule your consultation", body)


@router.post(
    "/r/{token}",
    response_class=HTMLResponse,
    summary="Move the booking to another free time",
    responses={**POST_ERRORS, 409: {"description": "the time is not free", "content": ERROR}},
)
def reschedule(
    token: str, start: str = Form(max_length=64), ctx: AppContext = Depends(context)
) -> HTMLResponse:
    booking_id = tokens.booking_of(ctx, tokens.RESCHEDULE, token)
    try:
        wanted = datetime.fromisoformat(start)
    except ValueError:
        raise Invalid("start is not an ISO 8601 time", code="invalid_start") from None
    moved = booking.reschedule(ctx, booking_id, wanted)
    with ctx.db.read() as conn:
        text = notify.when(booking.booking_row(conn, moved.id))
    return _page("Rescheduled", f"<p>Your consultation is now on {escape(text)}.</p>")


@router.get(
    "/ics/{token}",
    summary="The booking's calendar invitation (REQUEST, or CANCEL once cancelled)",
    responses={**ERRORS, 200: {"content": {"text/calendar": {}}}},
)
def invitation(token: str, ctx: AppContext = Depends(context)) -> Response:
    found = _booking(ctx, tokens.ICS, token)
    with ctx.db.read() as conn:
        organizer = crm.user_row(conn, found.user_id)
    data = ics.invitation(found, organizer, canceled=found.status != BOOKED)
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="invite.ics"'}
    return Response(data, media_type="text/calendar; charset=utf-8", headers=headers)
