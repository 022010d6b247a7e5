"""What other domains and the composition root may use of scheduling: the one module they import.

Event names (pipeline track events): ``consultation_scheduled`` (a booking, or a reschedule with
``rescheduled: true``), ``consultation_canceled`` and ``consultation.requested`` (no preferred time was
free: pending for a person); see :mod:`leadflow.scheduling.notify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.db import chunked
from leadflow.kernel.facts import ContactsErased, ContactsMerged
from leadflow.scheduling import queries
from leadflow.scheduling.booking import available_slots as available_slots
from leadflow.scheduling.booking import cancel as cancel
from leadflow.scheduling.booking import request as request
from leadflow.scheduling.booking import reschedule as reschedule
from leadflow.scheduling.calendly import handler as calendly_handler
from leadflow.scheduling.feed import refresh_due as refresh_feeds


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: the person's bookings and consultation requests go with them."""
    for chunk in chunked(list(message.contact_ids), 1000):
        for statement in queries.erase(chunk):
            conn.execute(statement)


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merge: the loser's bookings and requests belong to the survivor."""
    if message.pairs:
        pairs = [{"loser": a, "survivor": b} for a, b in message.pairs]
        for statement in queries.MOVE_TO_SURVIVOR:
            conn.execute(statement, pairs)


def export(conn: Connection, contact_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """A person's bookings and consultation requests, for the GDPR export."""
    return {
        "bookings": [dict(r._mapping) for r in conn.execute(queries.bookings_of(contact_ids))],
        "requests": [dict(r._mapping) for r in conn.execute(queries.requests_of(contact_ids))],
    }


__all__ = [
    "available_slots",
    "calendly_handler",
    "cancel",
    "export",
    "on_contacts_erased",
    "on_contacts_merged",
    "refresh_feeds",
    "request",
    "reschedule",
]
