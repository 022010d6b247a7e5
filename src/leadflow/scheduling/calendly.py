"""Calendly's bookings: the ``consultation_scheduled`` / ``consultation_canceled`` events an incoming
Calendly delivery becomes (source ``webhook``) are mirrored as bookings, in the pipeline's transaction.

* ``consultation_scheduled`` books the consultant offering a service named like the Calendly event
  (else the first consultant), at the time Calendly gives (Calendly decided: no slot check), unless a
  booking with that invitee exists; it logs the CRM ``meeting``. A consultant whose slot is taken by a
  live booking is skipped; with none free, nothing is booked.
* ``consultation_canceled`` cancels the invitee's booking; with ``rescheduled`` it is marked so, and
  the ``consultation_scheduled`` that follows (``rescheduled``: Calendly's ``old_invitee``) moves that
  booking instead of creating one — a reschedule ends as one booking, its ``SEQUENCE`` bumped.

The events themselves already move deals and start journeys; no email is sent (Calendly sends its own).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched, TouchedEvent
from leadflow.kernel.ids import new_id
from leadflow.scheduling import notify, profiles, queries
from leadflow.scheduling.models import BOOKED

SOURCE = "webhook"
CALENDLY = "calendly"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return found if found.tzinfo else None


def _consultant(conn: Connection, name: Any, start: datetime) -> str | None:
    found = [profile for profile, user in profiles.consultants(conn) if user.active]
    named = [p for p in found if any(s["name"] == name for s in p.services)]
    for profile in named + [p for p in found if p not in named]:
        if conn.execute(queries.LIVE_AT, {"user_id": profile.user_id, "starts_at": start}).first() is None:
            return str(profile.user_id)
    return None


def _scheduled(conn: Connection, ctx: AppContext, event: TouchedEvent, props: dict[str, Any]) -> None:
    invitee, start, end = (
        props.get("invitee_uri"),
        _time(props.get("start_time")),
        _time(props.get("end_time")),
    )
    email = props.get("email")
    if (
        not isinstance(invitee, str)
        or start is None
        or end is None
        or end <= start
        or not isinstance(email, str)
    ):
        return
    if conn.execute(queries.BOOKING_BY_EXTERNAL, {"external_id": invitee}).first() is not None:
        return  # seen already
    now = event.timestamp
    moved = (
        conn.execute(queries.RESCHEDULED_OF, {"email": email}).first() if props.get("rescheduled") else None
    )
    user_id = _consultant(conn, props.get("event_name"), start)
    if user_id is None:
        return
    if moved is not None:
        values = {"booking_id": moved.id, "user_id": user_id, "starts_at": start, "ends_at": end}
        conn.execute(queries.MOVE, {**values, "external_id": invitee, "at": now})
        return
    booking_id = new_id()
    conn.execute(
        queries.BOOKING_INSERT,
        {
            "id": booking_id,
            "user_id": user_id,
            "contact_id": event.contact_id,
            "email": email,
            "name": props.get("name") if isinstance(props.get("name"), str) else None,
            "service": str(props.get("event_name") or "Calendly")[:200],
            "starts_at": start,
            "ends_at": end,
            "tz": "UTC",
            "status": BOOKED,
            "sequence": 0,
            "source": CALENDLY,
            "external_id": invitee[:500],
            "notes": None,
            "canceled_at": None,
            "cancel_reason": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    notify.meeting(conn, ctx, conn.execute(queries.BOOKING, {"booking_id": booking_id}).one(), actor=CALENDLY)


def _canceled(conn: Connection, event: TouchedEvent, props: dict[str, Any]) -> None:
    invitee = props.get("invitee_uri")
    if not isinstance(invitee, str):
        return
    found = conn.execute(queries.BOOKING_BY_EXTERNAL, {"external_id": invitee}).first()
    if found is None or found.status != BOOKED:
        return
    reason = queries.RESCHEDULED if props.get("rescheduled") else props.get("reason")
    reason = reason[:500] if isinstance(reason, str) else None
    conn.execute(queries.CANCEL, {"booking_id": found.id, "at": event.timestamp, "reason": reason})


def handler(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The bus handler mirroring Calendly's events (see the module's rules)."""

    def mirror(conn: Connection, message: ContactsTouched) -> None:
        wanted = (notify.SCHEDULED, notify.CANCELED)
        found = [e for e in message.events if e.source == SOURCE and e.event in wanted and e.properties]
        for event in sorted(found, key=lambda e: e.id):
            props = dict(event.properties or {})
            if event.event == notify.SCHEDULED:
                _scheduled(conn, ctx, event, props)
            else:
                _canceled(conn, event, props)

    return mirror
