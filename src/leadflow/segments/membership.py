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
from leadflow.events.models import events as events_table
from leadflow.kernel.db import advisory_lock, bulk_insert, lock_key
from leadflow.segments.models import segment_members, segments

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
    conn.execute(
        sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"),
        {"keys": keys},
    )


def _properties(segment: Any) -> dict[str, Any]:
    return {"segment_id": segment.id, "segment_name": segment.name}


def _temp(conn: Connection, name: str, query: Any) -> sa.Table:
    """A temporary table holding the contact ids ``query`` selects (dropped at commit on PostgreSQL)."""
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String(26), primary_key=True),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    table.create(conn)
    conn.execute(table.insert().from_select(["id"], query))
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"ANALYZE {name}"))
    return table


def _emit_from(conn: Connection, source: sa.Table, segment: Any, name: str, at: datetime) -> None:
    """One internal event per contact id in ``source``, written by a single INSERT … SELECT."""
    run = uuid.uuid4().hex
    tag = "in" if name == ENTERED else "out"
    message_id = sa.literal(f"seg:{run}:") + source.c.id + sa.literal(f":{tag}")
    select = sa.select(
        message_id,
        sa.literal("track"),
        sa.literal(name),
        source.c.id,
        sa.bindparam(None, _properties(segment), type_=events_table.c.properties.type),
        sa.bindparam(None, at, type_=events_table.c.timestamp.type),
        sa.bindparam(None, at, type_=events_table.c.received_at.type),
        sa.literal("internal"),
    ).select_from(source)
    columns = [
        "message_id",
        "type",
        "event",
        "contact_id",
        "properties",
        "timestamp",
        "received_at",
        "source",
    ]
    conn.execute(events_table.insert().from_select(columns, select))


def refresh(conn: Connection, segment: Any, query: Any, at: datetime) -> Change:
    """Bring a segment's members in line with ``query`` (``SELECT id`` of who belongs), all in SQL:
    who belongs now, who enters and who leaves are temporary tables; nothing is loaded into Python."""
    lock(conn, segment.id)
    suffix = uuid.uuid4().hex[:12]
    members = segment_members.c
    current = _temp(conn, f"seg_now_{suffix}", query)
    was_member = sa.exists().where(members.segment_id == segment.id, members.contact_id == current.c.id)
    entering = _temp(conn, f"seg_in_{suffix}", sa.select(current.c.id).where(sa.not_(was_member)))
    still_in = sa.exists().where(current.c.id == members.contact_id)
    leaving = _temp(
        conn,
        f"seg_out_{suffix}",
        sa.select(members.contact_id).where(members.segment_id == segment.id, sa.not_(still_in)),
    )
    at_param = sa.bindparam(None, at, type_=members.entered_at.type)
    conn.execute(
        segment_members.insert().from_select(
            ["segment_id", "contact_id", "entered_at"],
            sa.select(sa.literal(segment.id), entering.c.id, at_param),
        )
    )
    conn.execute(
        segment_members.delete().where(
            members.segment_id == segment.id, members.contact_id.in_(sa.select(leaving.c.id))
        )
    )
    _emit_from(conn, entering, segment, ENTERED, at)
    _emit_from(conn, leaving, segment, EXITED, at)
    entered, exited, total = (
        int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())
        for t in (entering, leaving, current)
    )
    for table in (current, entering, leaving):
        table.drop(conn)
    _set_count(conn, segment.id, total, at)
    return Change(segment.id, entered, exited, total)


def apply(
    conn: Connection, segment: Any, entered: Sequence[str], exited: Sequence[str], at: datetime
) -> None:
    """Add and remove members (ids known to be outside / inside), with their events and the count."""
    members = segment_members.c
    bulk_insert(
        conn,
        segment_members,
        [{"segment_id": segment.id, "contact_id": c, "entered_at": at} for c in entered],
    )
    if exited:
        conn.execute(
            segment_members.delete().where(
                members.segment_id == segment.id, members.contact_id.in_(list(exited))
            )
        )
    run = uuid.uuid4().hex
    items = [(c, ENTERED, _properties(segment), f"seg:{run}:{c}:in") for c in entered]
    items += [(c, EXITED, _properties(segment), f"seg:{run}:{c}:out") for c in exited]
    events.emit_many(conn, items, at)
    delta = len(entered) - len(exited)
    conn.execute(
        segments.update()
        .where(segments.c.id == segment.id)
        .values(member_count=segments.c.member_count + delta)
    )


def _set_count(conn: Connection, segment_id: str, total: int, at: datetime) -> None:
    conn.execute(
        segments.update().where(segments.c.id == segment_id).values(member_count=total, last_refreshed_at=at)
    )
