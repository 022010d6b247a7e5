"""Materialised membership: full refreshes diffed in SQL, and per-contact re-evaluation.

Every entry and exit is also an internal event (``leadflow.segment_entered`` / ``_exited``) in the
normal pipeline, so journeys, webhooks and other segments react to it. A per-segment lock serialises a
refresh with the real-time path, so the two never undo each other's work.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.events import service as events
from leadflow.kernel.db import advisory_lock, bulk_insert, lock_key
from leadflow.segments import queries
from leadflow.segments.models import segment_members

ENTERED, EXITED = "leadflow.segment_entered", "leadflow.segment_exited"


@dataclass(frozen=True)
class Change:
    segment_id: str
    entered: int
    exited: int
    members: int


def lock(conn: Connection, segment_id: str) -> None:
    advisory_lock(conn, f"leadflow.segment.{segment_id}")


def lock_all(conn: Connection, segment_ids: list[str]) -> None:
    """The locks of several segments, in one statement, always in the same order (no deadlocks)."""
    if conn.dialect.name != "postgresql" or not segment_ids:
        return
    keys = sorted(lock_key(f"leadflow.segment.{segment_id}") for segment_id in segment_ids)
    conn.execute(queries.LOCK_ALL, {"keys": keys})


def _properties(segment: Any) -> dict[str, Any]:
    return {"segment_id": segment.id, "segment_name": segment.name}


def _temp(conn: Connection, name: str, query: Any) -> sa.Table:
    """A temporary table holding the contact ids ``query`` selects (dropped at commit on PostgreSQL)."""
    table = queries.temporary_ids(name)
    table.create(conn)
    conn.execute(queries.fill(table, query))
    if conn.dialect.name == "postgresql":
        conn.execute(queries.analyze(table))
    return table


def _emit_from(conn: Connection, source: sa.Table, segment: Any, name: str, at: datetime) -> None:
    """One internal event per contact id in ``source``, written by a single INSERT … SELECT."""
    run = uuid.uuid4().hex
    tag = "in" if name == ENTERED else "out"
    select = queries.internal_events(source, f"seg:{run}:", f":{tag}", name, _properties(segment), at)
    conn.execute(events.insert_internal(select))


def refresh(conn: Connection, segment: Any, query: Any, at: datetime) -> Change:
    """Bring a segment's members in line with ``query`` (``SELECT id`` of who belongs), all in SQL:
    who belongs now, who enters and who leaves are temporary tables; nothing is loaded into Python."""
    lock(conn, segment.id)
    suffix = uuid.uuid4().hex[:12]
    current = _temp(conn, f"seg_now_{suffix}", query)
    entering = _temp(conn, f"seg_in_{suffix}", queries.entering(current, segment.id))
    leaving = _temp(conn, f"seg_out_{suffix}", queries.leaving(current, segment.id))
    conn.execute(queries.add_members(segment.id, entering, at))
    conn.execute(queries.remove_members(segment.id, leaving))
    _emit_from(conn, entering, segment, ENTERED, at)
    _emit_from(conn, leaving, segment, EXITED, at)
    entered, exited, total = (
        int(conn.execute(queries.count_rows(t)).scalar_one()) for t in (entering, leaving, current)
    )
    for table in (current, entering, leaving):
        table.drop(conn)
    conn.execute(queries.set_count(segment.id, total, at))
    return Change(segment.id, entered, exited, total)


def apply(
    conn: Connection, segment: Any, entered: Sequence[str], exited: Sequence[str], at: datetime
) -> None:
    """Add and remove members (ids known to be outside / inside), with their events and the count."""
    bulk_insert(
        conn,
        segment_members,
        [{"segment_id": segment.id, "contact_id": c, "entered_at": at} for c in entered],
    )
    if exited:
        conn.execute(queries.remove_listed(segment.id, exited))
    run = uuid.uuid4().hex
    items = [(c, ENTERED, _properties(segment), f"seg:{run}:{c}:in") for c in entered]
    items += [(c, EXITED, _properties(segment), f"seg:{run}:{c}:out") for c in exited]
    events.emit_many(conn, items, at)
    conn.execute(queries.add_to_count(segment.id, len(entered) - len(exited)))
