"""What a booking tells the world, in the booking's transaction: the confirmation (or cancellation)
email through the messaging outbox, the CRM's ``meeting`` activity, and the pipeline's track events
(``consultation_scheduled``, ``consultation_canceled``, ``consultation.requested``) so deals move and
journeys start.

The email carries the invitation (:func:`leadflow.scheduling.ics.invitation`: ``METHOD:REQUEST``, or
``CANCEL`` once cancelled; the booking's stable ``UID``, its ``SEQUENCE``) as calendar clients expect it
(the shape of Google Calendar's and Outlook's own invitations): a ``text/calendar; method=…;
charset=UTF-8`` part beside the text and HTML, which Gmail and Outlook turn into an invitation with its
buttons, and the same ICS as an ``invite.ics`` attachment (``application/ics``) for clients that only
look at attachments. It also links to it (``/calendar/ics/{token}``): "Add to your calendar".
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Conflict
from leadflow.messaging import service as messaging
from leadflow.scheduling import ics, tokens
from leadflow.scheduling.schemas import zone_of

CONFIRMATION, CANCELLATION = "consultation-confirmation", "consultation-cancellation"
SCHEDULED, CANCELED, REQUESTED = "consultation_scheduled", "consultation_canceled", "consultation.requested"
_FOOT = '<p><a href="{{ vars.ics_url }}">Add to your calendar</a></p>'
TEMPLATES = (
    {
        "key": CONFIRMATION,
        "name": "Consultation: confirmation (with the calendar invitation)",
        "kind": "transactional",
        "subject": "Your {{ vars.service }} on {{ vars.when }}",
        "html": (
            "<p>Hello{% if contact.first_name %} {{ contact.first_name }}{% endif %},</p>"
            "<p>your <strong>{{ vars.service }}</strong> with {{ vars.consultant }} is booked for"
            " <strong>{{ vars.when }}</strong> ({{ vars.tz }}).</p>"
            + _FOOT
            + '<p><a href="{{ vars.reschedule_url }}">'
            'Reschedule</a> · <a href="{{ vars.cancel_url }}">Cancel</a></p>'
        ),
    },
    {
        "key": CANCELLATION,
        "name": "Consultation: cancelled",
        "kind": "transactional",
        "subject": "Cancelled: your {{ vars.service }} on {{ vars.when }}",
        "html": "<p>Your <strong>{{ vars.service }}</strong> on {{ vars.when }} is cancelled.</p>" + _FOOT,
    },
)


def install_templates(ctx: AppContext) -> None:
    """The shipped emails, unless templates with their keys exist (perhaps edited)."""
    with ctx.db.read() as conn:
        present = set(messaging.template_ids(conn, [t["key"] for t in TEMPLATES]))
    for template in TEMPLATES:
        if template["key"] not in present:
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                messaging.create_template(ctx, messaging.TemplateCreate(**template), actor="system")


def when(booking: Any) -> str:
    local: datetime = booking.starts_at.astimezone(zone_of(booking.tz))
    return local.strftime("%A %d %B %Y, %H:%M")


def email(conn: Connection, ctx: AppContext, booking: Any, consultant: Any, *, canceled: bool) -> None:
    """The confirmation (booked, rescheduled) or cancellation email, once per invitation sequence."""
    if booking.contact_id is None:
        return
    context = {
        "service": booking.service,
        "consultant": consultant.name,
        "when": when(booking),
        "tz": booking.tz,
        "ics_url": tokens.url(ctx, tokens.ICS, booking.id),
        "cancel_url": tokens.url(ctx, tokens.CANCEL, booking.id),
        "reschedule_url": tokens.url(ctx, tokens.RESCHEDULE, booking.id),
    }
    message = {
        "key": f"booking:{booking.id}:{booking.sequence}",
        "kind": "transactional",
        "contact_id": booking.contact_id,
        "template": CANCELLATION if canceled else CONFIRMATION,
        "context": {"vars": context, "attachments": invitation_parts(booking, consultant, canceled=canceled)},
    }
    messaging.enqueue_many(conn, ctx, [message], ctx.clock.now())


def invitation_parts(booking: Any, consultant: Any, *, canceled: bool) -> list[dict[str, Any]]:
    """The invitation as the email carries it: an alternative ``text/calendar`` part and an
    ``invite.ics`` attachment (see the module's docstring)."""
    data = ics.invitation(booking, consultant, canceled=canceled)
    method = "CANCEL" if canceled else "REQUEST"
    return [
        messaging.attachment(f"text/calendar; method={method}; charset=UTF-8", data, alternative=True),
        messaging.attachment("application/ics", data, filename="invite.ics"),
    ]


def meeting(conn: Connection, ctx: AppContext, booking: Any, *, actor: str) -> None:
    """The CRM timeline's ``meeting`` activity for a booking (once per booking)."""
    if booking.contact_id is None:
        return
    entry = crm.NewActivity(
        contact_id=booking.contact_id,
        kind="meeting",
        subject=f"{booking.service} on {booking.starts_at.isoformat()}",
        body=booking.notes,
        key=f"booking:{booking.id}",
        owner_id=booking.user_id,
    )
    crm.log_activities(conn, ctx.clock, [entry], actor=actor)


def track(
    conn: Connection, ctx: AppContext, email_address: str, key: str, name: str, properties: dict[str, Any]
) -> None:
    """A pipeline event about the person with this address (an ``identify`` then the ``track``)."""
    now = ctx.clock.now()
    who = {"anonymousId": f"booking-{key}"}
    rows = [
        {"type": "identify", "messageId": f"{key}:identify", "traits": {"email": email_address}, **who},
        {"type": "track", "messageId": f"{key}:{name}", "event": name, "properties": properties, **who},
    ]
    events.insert_tracked(conn, [events.to_row(raw, kind=None, received_at=now) for raw in rows])
    on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))


def properties(booking: Any, **extra: Any) -> dict[str, Any]:
    return {
        "booking_id": booking.id,
        "consultant_id": booking.user_id,
        "service": booking.service,
        "start_time": booking.starts_at.isoformat(),
        "end_time": booking.ends_at.isoformat(),
        "email": booking.email,
        **extra,
    }
