"""The qualify step (architecture step 3), run for every unit of work in its own transaction:
scores first (segments may use them), then segment membership, then lifecycle promotion, then
journeys (architecture step 4: exits, waits, enrolment)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.engine import Connection

from leadflow.contacts import queries
from leadflow.journeys import triggers as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched
from leadflow.lifecycle import service as lifecycle
from leadflow.scoring import bands
from leadflow.scoring import engine as scoring
from leadflow.segments import dependencies, realtime


def signals(message: ContactsTouched, scored: set[str], peers: set[str]) -> dict[str, set[str]]:
    """What changed for each contact, in the vocabulary of segment dependencies."""
    found: dict[str, set[str]] = defaultdict(set)
    for contact_id in peers:
        found[contact_id].add("company")
    for contact_id, fields in message.changes.items():
        found[contact_id] |= dependencies.field_signals(fields)
    for event in message.events:
        found[event.contact_id] |= dependencies.event_signals(event)
    for contact_id in scored:
        found[contact_id].add("score")
    return {contact_id: values for contact_id, values in found.items() if values}


def qualifier(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    def qualify(conn: Connection, message: ContactsTouched) -> None:
        now = ctx.clock.now()
        peers = queries.company_peers(conn, [ev.contact_id for ev in message.events if ev.type == "group"])
        scored = scoring.apply(conn, message, now, company_peers=peers)
        realtime.reevaluate(conn, ctx, signals(message, scored, peers), now, lowest_band=bands.lowest(conn))
        lifecycle.on_touched(conn, ctx, message)
        journeys.on_touched(conn, ctx, message)

    return qualify
