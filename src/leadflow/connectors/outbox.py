"""The sync outbox: rows written in the transaction of the change, drained by the worker.

- :func:`on_touched` (subscribed to ``ContactsTouched``): each active connector whose triggers match
  queues its contacts — one multi-row statement per unit of work, never a vendor call.
- Coalescing: one row per (connector, kind, local id). A second change before the first is written
  bumps the row's ``version`` (and keeps its first ``enqueued_at``, the start of the lag); the worker
  deletes the row only if the version it wrote is still the row's, so a change that arrived during the
  write is written next.
- A suppression on its own (:func:`suppressed_handler`, on ``AddressesSuppressed``: a hard bounce, a
  complaint, an unsubscribe) queues the contacts holding those addresses for every active connector whose
  mapping writes ``subscription_status`` (Mailchimp, Kit, ActiveCampaign lists, HubSpot if mapped):
  the view reads ``unsubscribed`` for a suppressed address, so the vendor's status follows.
- No echo: a change that came *from* a connector (a pull applying a remote value) runs inside
  :func:`pulling`; that connector does not queue it back.
- Erasure (:func:`on_contacts_erased`): the person's links, waiting syncs, audit values and conflicts
  go, and an ``erasure`` row is queued for every connector that knew them, holding only the remote id;
  the worker deletes the remote person and records it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.connectors import config, conversions, mapping, queries, triggers
from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.db import chunked, on_commit
from leadflow.kernel.facts import AddressesSuppressed, ContactsErased, ContactsMerged, ContactsTouched

CHANNEL = "connectors"
CONTACT, ERASURE = "contact", "erasure"
STATUS = "subscription_status"  # the contact field a vendor's marketing status is mapped from
_CHUNK = 500
_ORIGIN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "leadflow_connector_origin", default=None
)


@contextmanager
def pulling(connector_id: str) -> Iterator[None]:
    """Changes made inside come from this connector: it does not queue them back (no echo)."""
    token = _ORIGIN.set(connector_id)
    try:
        yield
    finally:
        _ORIGIN.reset(token)


def _make_announcer(ctx: AppContext) -> Callable[[], None]:
    return lambda: ctx.signals.announce(CHANNEL)


_ANNOUNCE: Slot[Callable[[], None]] = Slot("connectors.announce", _make_announcer)


def row(
    connector_id: str,
    kind: str,
    local_id: str,
    at: datetime,
    *,
    contact_id: str | None = None,
    payload: Any = None,
) -> dict[str, Any]:
    return {
        "connector_id": connector_id,
        "kind": kind,
        "local_id": local_id,
        "contact_id": contact_id,
        "payload": payload,
        "state": queries.PENDING,
        "enqueued_at": at,
        "next_at": at,
    }


def enqueue_many(conn: Connection, ctx: AppContext, rows: Sequence[dict[str, Any]]) -> int:
    """Queue (or coalesce) syncs in the caller's transaction; the worker is woken after the commit."""
    unique = list({(r["connector_id"], r["kind"], r["local_id"]): r for r in rows}.values())
    for chunk in chunked(unique, _CHUNK):
        conn.execute(queries.enqueue_each(conn.dialect.name), chunk)
    if unique:
        announce(conn, ctx)
    return len(unique)


def announce(conn: Connection, ctx: AppContext) -> None:
    """Wake the worker once the caller's transaction commits."""
    on_commit(conn, ctx.get(_ANNOUNCE))


def active(conn: Connection, ctx: AppContext) -> list[config.Connector]:
    return [config.opened(ctx, found) for found in conn.execute(queries.ACTIVE_CONNECTORS)]


def _active_triggers(conn: Connection) -> list[tuple[str, triggers.Triggers, str]]:
    """(id, triggers, vendor) of the active connectors: no credentials are opened on the hot path."""
    return [
        (found.id, triggers.parse(found.triggers), found.vendor)
        for found in conn.execute(queries.ACTIVE_CONNECTORS)
    ]


def on_touched(conn: Connection, ctx: AppContext, fact: ContactsTouched) -> int:
    """Queue the contacts each connector's triggers ask for; a conversion vendor's connector (GA4)
    queues one row per conversion event instead (:mod:`leadflow.connectors.conversions`)."""
    origin = _ORIGIN.get()
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = []
    for connector_id, wanted, vendor in _active_triggers(conn):
        if connector_id == origin:
            continue
        if vendor in conversions.VENDORS:
            for event_id, contact_id in conversions.conversions_in(fact, wanted):
                rows.append(row(connector_id, conversions.CONVERSION, event_id, now, contact_id=contact_id))
            continue
        for contact_id in set(triggers.contacts_for(fact, wanted)):
            rows.append(row(connector_id, CONTACT, contact_id, now, contact_id=contact_id))
    return enqueue_many(conn, ctx, rows)


def handler(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The bus subscriber for ``ContactsTouched`` (wired in :mod:`leadflow.runtime.context`)."""

    def touched(conn: Connection, fact: ContactsTouched) -> None:
        on_touched(conn, ctx, fact)

    return touched


def _syncs_status(raw_mapping: Any) -> bool:
    return any(entry.source == (STATUS,) for entry in mapping.parse(raw_mapping or []))


def on_suppressed(conn: Connection, ctx: AppContext, fact: AddressesSuppressed) -> int:
    origin = _ORIGIN.get()
    wanted = [
        found.id
        for found in conn.execute(queries.ACTIVE_CONNECTORS)
        if found.id != origin and _syncs_status(found.mapping)
    ]
    if not wanted or not fact.emails:
        return 0
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = []
    for chunk in chunked(list(fact.emails), _CHUNK):
        for contact_id in conn.execute(contacts.ids_holding(chunk)).scalars():
            rows += [row(c, CONTACT, contact_id, now, contact_id=contact_id) for c in wanted]
    return enqueue_many(conn, ctx, rows)


def suppressed_handler(ctx: AppContext) -> Callable[[Connection, AddressesSuppressed], None]:
    """The bus subscriber for ``AddressesSuppressed`` (wired in :mod:`leadflow.runtime.context`)."""

    def suppressed(conn: Connection, fact: AddressesSuppressed) -> None:
        on_suppressed(conn, ctx, fact)

    return suppressed


def erasure_handler(ctx: AppContext) -> Callable[[Connection, ContactsErased], None]:
    def erased(conn: Connection, fact: ContactsErased) -> None:
        ids = list(fact.contact_ids)
        now = ctx.clock.now()
        rows: list[dict[str, Any]] = []
        for chunk in chunked(ids, _CHUNK):
            for link in conn.execute(queries.contact_links(chunk)):
                rows.append(
                    row(
                        link.connector_id,
                        ERASURE,
                        link.local_id,
                        now,
                        contact_id=link.local_id,
                        payload={"remote_id": link.remote_id},
                    )
                )
            for statement in (
                queries.erase_outbox(chunk),
                queries.drop_links(chunk),
                queries.erase_audit(chunk),
                queries.erase_conflicts(chunk),
            ):
                conn.execute(statement)
        conn.execute(queries.CLEAR_LAST_ERRORS)
        enqueue_many(conn, ctx, rows)

    return erased


def on_contacts_merged(conn: Connection, fact: ContactsMerged) -> None:
    """A merge: the merged contact's waiting syncs go (the survivor is queued by its own changes) and
    its remote records become the survivor's where the survivor has none, so the survivor's next write
    updates that record by id instead of making a second one."""
    pairs = [{"loser": loser, "survivor": survivor} for loser, survivor in fact.pairs]
    if pairs:
        conn.execute(queries.MOVE_LINKS, pairs)
    for chunk in chunked([loser for loser, _ in fact.pairs], _CHUNK):
        conn.execute(queries.erase_outbox(chunk))
