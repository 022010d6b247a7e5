"""Deliveries about no contact: leadflow's own notices (``alert.opened`` / ``alert.resolved``) queued to
every active endpoint subscribed to their type (or to ``*``), in the caller's transaction.

Exactly one delivery per (notice, endpoint): the delivery key is ``<key>:<endpoint>``, so a notice
offered twice finds its key taken. ``data`` carries ``contact: null`` (the catalogue's
``about_contact=False`` types)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.webhooks import catalogue, endpoints, outbox


def notify(conn: Connection, ctx: AppContext, type_name: str, key: str, data: dict[str, Any]) -> int:
    """Queue the notice ``type_name`` (a catalogue type) with ``data``; returns how many were new."""
    if type_name not in catalogue.BY_NAME:
        raise ValueError(f"{type_name} is not in the webhook catalogue")
    now = ctx.clock.now()
    rows = [
        {
            "key": f"{key}:{row.id}",
            "url": row.url,
            "event": type_name,
            "payload": {**data, "contact": None},
            "at": now,
            "endpoint_id": row.id,
        }
        for row in endpoints.active(conn)
        if type_name in (row.event_types or ()) or catalogue.ANY in (row.event_types or ())
    ]
    return outbox.enqueue_many(conn, ctx, rows)
