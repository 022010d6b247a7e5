"""``/api/v1/calendar``: consultants (write scope to change, read to read), available slots and
consultation requests (write scope: the site's backend asks on the visitor's behalf)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Response

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.http import context, require
from leadflow.kernel.principal import Principal
from leadflow.scheduling import booking, feed, profiles
from leadflow.scheduling.schemas import (
    Booking,
    ConsultationRequest,
    Profile,
    ProfileCreate,
    ProfileFields,
    RequestOutcome,
    Slots,
    zone_of,
)

router = APIRouter(prefix="/api/v1/calendar", tags=["calendar"])


@router.post("/consultants", response_model=Profile, status_code=201, summary="Make a CRM user a consultant")
def create_consultant(
    body: ProfileCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Profile:
    return profiles.create(ctx, body, actor=principal.actor)


@router.get("/consultants", response_model=list[Profile], summary="Consultants and their booking profiles")
def list_consultants(
    ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> list[Profile]:
    return profiles.listing(ctx)


@router.get("/consultants/{user_id}", response_model=Profile, summary="A consultant's booking profile")
def get_consultant(
    user_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Profile:
    return profiles.get(ctx, user_id)


@router.put("/consultants/{user_id}", response_model=Profile, summary="Change a consultant's booking profile")
def put_consultant(
    user_id: str,
    body: ProfileFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Profile:
    return profiles.update(ctx, user_id, body, actor=principal.actor)


@router.delete("/consultants/{user_id}", status_code=204, summary="Stop a user being bookable")
def delete_consultant(
    user_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    profiles.delete(ctx, user_id, actor=principal.actor)
    return Response(status_code=204)


@router.post(
    "/consultants/{user_id}/refresh-feed",
    response_model=Profile,
    summary="Read the consultant's ICS feed now",
)
def refresh_feed(
    user_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Profile:
    found = profiles.get(ctx, user_id)
    if found.ics_url is None:
        raise Invalid("the consultant has no ICS feed", code="no_feed")
    with ctx.db.read() as conn:
        row = profiles.row(conn, user_id)
    feed.refresh_one(ctx, row, found.timezone)
    return profiles.get(ctx, user_id)


def _zone(tz: str) -> str:
    try:
        zone_of(tz)
    except ValueError as exc:
        raise Invalid(str(exc), code="invalid_timezone") from None
    return tz


@router.get("/available-slots", response_model=Slots, summary="Free slots of a service, in the asker's zone")
def available_slots(
    service: str = Query(max_length=200),
    from_: datetime = Query(alias="from"),
    to: datetime = Query(),
    tz: str = Query(default="UTC", max_length=64),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Slots:
    return booking.available_slots(ctx, service, from_, to, _zone(tz))


@router.post(
    "/consultation-requests",
    response_model=RequestOutcome,
    status_code=201,
    summary="Book the first free preferred time, else keep the request pending",
)
def consultation_request(
    body: ConsultationRequest, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> RequestOutcome:
    return booking.request(ctx, body)


@router.get("/bookings/{booking_id}", response_model=Booking, summary="A booking")
def get_booking(
    booking_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Booking:
    with ctx.db.read() as conn:
        return booking.view(booking.booking_row(conn, booking_id))
