"""Conversions through the connectors' outbox (GA4): which applied events are conversions, and the
records a vendor sends for them.

A connector of a conversion vendor (:data:`VENDORS`) queues one outbox row per applied ``track`` event
named in its ``triggers.events`` — kind ``conversion``, ``local_id`` the event's id — so each
conversion is one row (never coalesced with another) and one hit. The worker drains these rows like
any other (claim, lease, token bucket, retries, dead letters): :func:`records` reads the events of a
batch in one query and builds each hit's body (:func:`leadflow.connectors.ga4.body_of`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.connectors import ga4, store, triggers
from leadflow.connectors.vendor import Record
from leadflow.kernel.facts import ContactsTouched

CONVERSION = ga4.CONVERSION
VENDORS = frozenset({"ga4"})


def conversions_in(fact: ContactsTouched, wanted: triggers.Triggers) -> Iterator[tuple[str, str]]:
    """(event id, contact id) of each applied ``track`` event of this unit of work that is a conversion."""
    for event in fact.events:
        if event.type == "track" and event.event is not None and event.event in wanted.events:
            yield str(event.id), event.contact_id


def records(conn: Connection, items: Sequence[Any]) -> tuple[list[Record], list[Any]]:
    """The records of these outbox rows (``local_id``: an event id; ``contact_id``), and the rows
    whose event is gone (erased): nothing to send."""
    ids = [int(item.local_id) for item in items if str(item.local_id).isdigit()]
    found = {str(row.id): row for row in conn.execute(store.conversion_events(ids))} if ids else {}
    made: list[Record] = []
    gone: list[Any] = []
    for item in items:
        row = found.get(str(item.local_id))
        if row is None or row.event is None:
            gone.append(item)
            continue
        client = ga4.client_id_of(row.anonymous_id, row.context, str(item.contact_id or item.local_id))
        body = ga4.body_of(row.event, row.properties, client_id=client, user_id=row.user_id, at=row.timestamp)
        made.append(Record(CONVERSION, str(item.local_id), body))
    return made, gone
