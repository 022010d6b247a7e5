"""Every statement the segments domain runs, except the rules themselves (:mod:`.compiler` builds those).

Module-level statements take named parameters (``sa.bindparam``); functions build statements and never
touch a connection. :data:`SAMPLES` builds each function's statement for the compile test.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Executable

from leadflow.kernel.db import Sample, where_in_dialect
from leadflow.kernel.types import UTCDateTime, json_type
from leadflow.segments.models import segment_members, segments

_m = segment_members.c

# ---- definitions ----------------------------------------------------------------------------------

#: The definitions table (copied whole into the journey simulator's scratch database).
TABLE = segments

SEGMENT = sa.select(segments).where(segments.c.id == sa.bindparam("segment_id"))
SEGMENT_BY_KEY = sa.select(segments).where(segments.c.key == sa.bindparam("key"))
ID_BY_KEY = sa.select(segments.c.id).where(segments.c.key == sa.bindparam("key"))
ID_BY_ID_OR_KEY = sa.select(segments.c.id).where(
    sa.or_(segments.c.id == sa.bindparam("id_or_key"), segments.c.key == sa.bindparam("id_or_key"))
)
REFERENCES = sa.select(segments.c.id, segments.c.dependencies)
INSERT = segments.insert()
DELETE = segments.delete().where(segments.c.id == sa.bindparam("segment_id"))
MEMBER_COUNT = sa.select(segments.c.member_count).where(segments.c.id == sa.bindparam("segment_id"))
#: Revision stamps of the dynamic segments (the catalog reloads only what changed).
DYNAMIC_STAMPS = sa.select(segments.c.id, segments.c.revision).where(segments.c.kind == "dynamic")


def change(segment_id: str, values: dict[str, Any]) -> sa.Update:
    """A change to a segment's definition: its revision goes up (caches of it are stale)."""
    return (
        segments.update()
        .where(segments.c.id == segment_id)
        .values({**values, "revision": segments.c.revision + 1})
    )


def rules_by_key(keys: Sequence[str]) -> sa.Select[Any]:
    return sa.select(segments.c.key, segments.c.rules).where(segments.c.key.in_(list(keys)))


def listing(after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(segments).order_by(segments.c.id).limit(limit)
    return query.where(segments.c.id > after) if after else query


def by_ids(segment_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(segments).where(segments.c.id.in_(list(segment_ids)))


def due(now: datetime, limit: int) -> sa.Select[Any]:
    """Dynamic segments whose refresh time has come, the most overdue first."""
    return (
        sa.select(segments.c.id)
        .where(segments.c.kind == "dynamic", segments.c.next_refresh_at <= now)
        .order_by(segments.c.next_refresh_at)
        .limit(limit)
    )


# ---- previews and members ---------------------------------------------------------------------------


def preview(matching: sa.Select[Any], sample: int) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """How many contacts ``matching`` (``SELECT id``) selects, and the first ``sample`` ids."""
    found = matching.subquery()
    count = sa.select(sa.func.count()).select_from(found)
    first = sa.select(found.c.id).order_by(found.c.id).limit(sample)
    return count, first


def members_page(segment_id: str, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(_m.contact_id, _m.entered_at).where(_m.segment_id == segment_id).order_by(_m.contact_id)
    return (query.where(_m.contact_id > after) if after else query).limit(limit)


def member_ids(segment_id: str, after: str, limit: int) -> sa.Select[Any]:
    """One page of member ids in id order after ``after`` (keyset pagination)."""
    return (
        sa.select(_m.contact_id)
        .where(_m.segment_id == segment_id, _m.contact_id > after)
        .order_by(_m.contact_id)
        .limit(limit)
    )


def members_after(*, bounded: bool) -> sa.Select[Any]:
    """Member ids of the segment ``:segment_id`` after ``:after`` (and, ``bounded``, up to ``:upto``):
    parameters, so one statement serves every chunk of a broadcast's recipients."""
    query = sa.select(_m.contact_id).where(
        _m.segment_id == sa.bindparam("segment_id"), _m.contact_id > sa.bindparam("after")
    )
    return query.where(_m.contact_id <= sa.bindparam("upto")) if bounded else query


CONTACT_SEGMENTS = (
    sa.select(_m.segment_id, segments.c.name, segments.c.kind, _m.entered_at)
    .join(segments, segments.c.id == _m.segment_id)
    .where(_m.contact_id == sa.bindparam("contact_id"))
    .order_by(segments.c.name)
)


def memberships_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(_m.contact_id, _m.segment_id, segments.c.key, segments.c.name, _m.entered_at)
        .join(segments, segments.c.id == _m.segment_id)
        .where(_m.contact_id.in_(list(contact_ids)))
        .order_by(segments.c.name, _m.segment_id)
    )


def present(segment_id: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    """Which of ``contact_ids`` are members of the segment."""
    return sa.select(_m.contact_id).where(_m.segment_id == segment_id, _m.contact_id.in_(list(contact_ids)))


DELETE_MEMBERS = segment_members.delete().where(_m.segment_id == sa.bindparam("segment_id"))

# ---- merges and erasure -------------------------------------------------------------------------------

#: A merge, per pair: the survivor takes the loser's memberships it does not already hold …
MOVE_MEMBERSHIPS = (
    segment_members.update()
    .where(
        _m.contact_id == sa.bindparam("loser"),
        _m.segment_id.not_in(
            sa.select(_m.segment_id).where(_m.contact_id == sa.bindparam("survivor")).scalar_subquery()
        ),
    )
    .values(contact_id=sa.bindparam("survivor"))
)
#: … the segments a contact is in lose one member (after a move: those both were in; erasure: all) …
UNCOUNT_MEMBER = (
    segments.update()
    .where(
        segments.c.id.in_(
            sa.select(_m.segment_id).where(_m.contact_id == sa.bindparam("contact_id")).scalar_subquery()
        )
    )
    .values(member_count=segments.c.member_count - 1)
)
#: … and the contact's memberships go.
DROP_MEMBERSHIPS = segment_members.delete().where(_m.contact_id == sa.bindparam("contact_id"))

# ---- membership changes ---------------------------------------------------------------------------------

#: Several segment locks in one statement, in key order (PostgreSQL; no deadlocks).
LOCK_ALL = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k")


def temporary_ids(name: str) -> sa.Table:
    """A temporary table of contact ids (dropped at commit on PostgreSQL)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.String(26), primary_key=True),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


def fill(table: sa.Table, query: sa.Select[Any]) -> sa.Insert:
    return table.insert().from_select(["id"], query)


def analyze(table: sa.Table) -> sa.DDL:
    """``ANALYZE`` a temporary table (PostgreSQL: its statistics, for the joins that follow)."""
    return sa.DDL("ANALYZE %(fullname)s").against(table)  # type: ignore[no-untyped-call]


def count_rows(table: sa.Table) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(table)


def entering(current: sa.Table, segment_id: str) -> sa.Select[Any]:
    """Ids of ``current`` that are not members yet."""
    was_member = sa.exists().where(_m.segment_id == segment_id, _m.contact_id == current.c.id)
    return sa.select(current.c.id).where(sa.not_(was_member))


def leaving(current: sa.Table, segment_id: str) -> sa.Select[Any]:
    """Members that are not in ``current`` any more."""
    still_in = sa.exists().where(current.c.id == _m.contact_id)
    return sa.select(_m.contact_id).where(_m.segment_id == segment_id, sa.not_(still_in))


def add_members(segment_id: str, source: sa.Table, at: datetime) -> sa.Insert:
    at_param = sa.bindparam(None, at, type_=_m.entered_at.type)
    return segment_members.insert().from_select(
        ["segment_id", "contact_id", "entered_at"], sa.select(sa.literal(segment_id), source.c.id, at_param)
    )


def remove_members(segment_id: str, source: sa.Table) -> sa.Delete:
    return segment_members.delete().where(
        _m.segment_id == segment_id, _m.contact_id.in_(sa.select(source.c.id))
    )


def remove_listed(segment_id: str, contact_ids: Sequence[str]) -> sa.Delete:
    return segment_members.delete().where(_m.segment_id == segment_id, _m.contact_id.in_(list(contact_ids)))


def internal_events(
    source: sa.Table,
    message_prefix: str,
    message_suffix: str,
    name: str,
    properties: dict[str, Any],
    at: datetime,
) -> sa.Select[Any]:
    """One internal event per id of ``source``: the rows :func:`leadflow.events.service.insert_internal`
    writes (message id = prefix + contact id + suffix)."""
    return sa.select(
        sa.literal(message_prefix) + source.c.id + sa.literal(message_suffix),
        sa.literal("track"),
        sa.literal(name),
        source.c.id,
        sa.bindparam(None, properties, type_=json_type()),
        sa.bindparam(None, at, type_=UTCDateTime()),
        sa.bindparam(None, at, type_=UTCDateTime()),
        sa.literal("internal"),
    ).select_from(source)


def add_to_count(segment_id: str, delta: int) -> sa.Update:
    return (
        segments.update()
        .where(segments.c.id == segment_id)
        .values(member_count=segments.c.member_count + delta)
    )


def set_count(segment_id: str, total: int, at: datetime) -> sa.Update:
    return (
        segments.update().where(segments.c.id == segment_id).values(member_count=total, last_refreshed_at=at)
    )


def set_next_refresh(segment_id: str, at: datetime) -> sa.Update:
    return segments.update().where(segments.c.id == segment_id).values(next_refresh_at=at)


# ---- real-time evaluation -----------------------------------------------------------------------------


def evaluation(segment_id: str, matching: sa.Select[Any]) -> sa.Select[Any]:
    """One segment's part of a real-time evaluation: ``(segment_id, id, now = 1)`` per matching contact."""
    found = matching.subquery()
    return sa.select(
        sa.literal(segment_id, sa.String).label("segment_id"), found.c.id, sa.literal(1).label("now")
    )


def current_members(dialect: str, segment_ids: list[str], contact_ids: list[str]) -> sa.Select[Any]:
    """Current members among these contacts, shaped like the evaluation rows (``now`` = 0)."""
    query = sa.select(_m.segment_id, _m.contact_id, sa.literal(0).label("now")).where(
        _m.segment_id.in_(segment_ids)
    )
    members: sa.Select[Any] = where_in_dialect(dialect, query, _m.contact_id, contact_ids)
    return members


def all_of(parts: Sequence[sa.Select[Any]]) -> sa.CompoundSelect[Any]:
    """The parts of a real-time evaluation in one round trip."""
    return sa.union_all(*parts)


def _sample_events() -> Executable:
    table = temporary_ids("seg_sample")
    return internal_events(table, "seg:run:", ":in", "leadflow.segment_entered", {"segment_id": "s"}, _NOW)


_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_IDS = sa.select(_m.contact_id.label("id"))

SAMPLES: list[Sample] = [
    lambda: change("s", {"name": "n"}),
    lambda: rules_by_key(["system.icp", "system.mql"]),
    lambda: listing("a", 10),
    lambda: listing(None, 10),
    lambda: by_ids(["a", "b"]),
    lambda: due(_NOW, 10),
    lambda: preview(_IDS, 20),
    lambda: members_page("s", "a", 10),
    lambda: member_ids("s", "", 5000),
    lambda: [members_after(bounded=True), members_after(bounded=False)],
    lambda: memberships_of(["a"]),
    lambda: present("s", ["a", "b"]),
    lambda: fill(temporary_ids("seg_sample"), _IDS),
    lambda: count_rows(temporary_ids("seg_sample")),
    lambda: entering(temporary_ids("seg_sample"), "s"),
    lambda: leaving(temporary_ids("seg_sample"), "s"),
    lambda: add_members("s", temporary_ids("seg_sample"), _NOW),
    lambda: remove_members("s", temporary_ids("seg_sample")),
    lambda: remove_listed("s", ["a"]),
    _sample_events,
    lambda: add_to_count("s", -2),
    lambda: set_count("s", 5, _NOW),
    lambda: set_next_refresh("s", _NOW),
    lambda: evaluation("s", _IDS),
    lambda: [current_members(dialect, ["s"], ["a", "b"]) for dialect in ("sqlite", "postgresql")],
    lambda: all_of([evaluation("s", _IDS), current_members("sqlite", ["s"], ["a"])]),
]
