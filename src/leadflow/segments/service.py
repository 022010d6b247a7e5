"""What other domains and the API may do with segments."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import queries as contact_queries
from leadflow.contacts.schemas import Contact
from leadflow.events.models import events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import where_in
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.scoring import bands
from leadflow.segments import dependencies, durations, membership, rules
from leadflow.segments.compiler import Compiler
from leadflow.segments.models import segment_members, segments
from leadflow.segments.schemas import (
    DEFAULT_REFRESH,
    ContactSegment,
    Member,
    Preview,
    Refreshed,
    Segment,
    SegmentCreate,
    SegmentPatch,
)

SAFETY_REFRESH = timedelta(days=1)  # every dynamic segment is recomputed at least daily


def _row(conn: Connection, segment_id: str) -> Any:
    row = conn.execute(sa.select(segments).where(segments.c.id == segment_id)).first()
    if row is None:
        raise NotFound(f"no segment {segment_id}", code="segment_not_found")
    return row


def _view(row: Any) -> Segment:
    return Segment.model_validate(dict(row._mapping))


def _references(conn: Connection) -> dict[str, set[str]]:
    rows = conn.execute(sa.select(segments.c.id, segments.c.dependencies)).all()
    return {row.id: set(row.dependencies.get("segments", ())) for row in rows}


def _check_references(conn: Connection, segment_id: str, rule: Any) -> dependencies.Dependencies:
    """The rule's dependencies, after checking every referenced segment exists and no cycle forms."""
    found = dependencies.of(rule)
    graph = _references(conn)
    missing = sorted(ref for ref in found.segments if ref not in graph)
    if missing:
        raise Invalid(f"rules refer to unknown segment(s) {', '.join(missing)}", code="invalid_rule")
    graph[segment_id] = set(found.segments)
    stack, seen = list(found.segments), set()
    while stack:
        current = stack.pop()
        if current == segment_id:
            raise Invalid("rules would make the segment depend on itself (a cycle)", code="segment_cycle")
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, ()))
    return found


def _definition(
    conn: Connection, segment_id: str, raw_rules: dict[str, Any], interval: str | None
) -> dict[str, Any]:
    rule = rules.parse(raw_rules)
    found = _check_references(conn, segment_id, rule)
    seconds = int(durations.parse(interval or DEFAULT_REFRESH).total_seconds())
    return {
        "rules": rules.dump(rule),
        "dependencies": found.to_json(),
        "time_relative": found.time_relative,
        "refresh_interval_seconds": seconds,
    }


def create(ctx: AppContext, data: SegmentCreate, *, actor: str, key: str | None = None) -> Segment:
    now = ctx.clock.now()
    segment_id = new_id()
    with ctx.db.write() as conn:
        if key is not None and conn.execute(sa.select(segments.c.id).where(segments.c.key == key)).first():
            raise Conflict(f"a segment with key {key!r} exists", code="segment_exists")
        values: dict[str, Any] = {
            "rules": None,
            "dependencies": {},
            "time_relative": False,
            "refresh_interval_seconds": int(durations.parse(DEFAULT_REFRESH).total_seconds()),
        }
        if data.kind == "dynamic":
            assert data.rules is not None
            values = _definition(conn, segment_id, data.rules, data.refresh_interval)
        row = {
            "id": segment_id,
            "key": key,
            "name": data.name,
            "description": data.description,
            "kind": data.kind,
            **values,
            "next_refresh_at": now if data.kind == "dynamic" else None,
            "last_refreshed_at": None,
            "member_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(segments.insert(), row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="segment.created",
            entity_type="segment",
            entity_id=segment_id,
            data=data.model_dump(mode="json", exclude_none=True),
        )
        view = _view(_row(conn, segment_id))
    ctx.signals.announce("segments")
    return view


def update(ctx: AppContext, segment_id: str, data: SegmentPatch, *, actor: str) -> Segment:
    now = ctx.clock.now()
    given = data.model_dump(exclude_unset=True)
    with ctx.db.write() as conn:
        row = _row(conn, segment_id)
        values: dict[str, Any] = {k: given[k] for k in ("name", "description") if k in given}
        if "rules" in given or "refresh_interval" in given:
            if row.kind != "dynamic":
                raise Invalid("a static list has no rules", code="invalid_rule")
            interval = given.get("refresh_interval") or f"{row.refresh_interval_seconds // 60}m"
            values |= _definition(conn, segment_id, given.get("rules") or row.rules, interval)
            values["next_refresh_at"] = now
        values["updated_at"] = now
        values["revision"] = segments.c.revision + 1
        conn.execute(segments.update().where(segments.c.id == segment_id).values(values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="segment.updated",
            entity_type="segment",
            entity_id=segment_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        view = _view(_row(conn, segment_id))
    ctx.signals.announce("segments")
    return view


def delete(ctx: AppContext, segment_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        row = _row(conn, segment_id)
        users = sorted(s for s, refs in _references(conn).items() if segment_id in refs)
        if users:
            raise Conflict(f"segment(s) {', '.join(users)} refer to this one", code="segment_in_use")
        membership.lock(conn, segment_id)
        conn.execute(segment_members.delete().where(segment_members.c.segment_id == segment_id))
        conn.execute(segments.delete().where(segments.c.id == segment_id))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="segment.deleted",
            entity_type="segment",
            entity_id=segment_id,
            data={"name": row.name},
        )
    ctx.signals.announce("segments")


def get(ctx: AppContext, segment_id: str) -> Segment:
    with ctx.db.read() as conn:
        return _view(_row(conn, segment_id))


def by_key(conn: Connection, key: str) -> Segment | None:
    row = conn.execute(sa.select(segments).where(segments.c.key == key)).first()
    return _view(row) if row else None


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Segment]:
    query = sa.select(segments).order_by(segments.c.id).limit(limit)
    if after:
        query = query.where(segments.c.id > after)
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(query)]


def _compiler(conn: Connection, ctx: AppContext) -> Compiler:
    return Compiler(conn.dialect.name, ctx.clock.now(), lowest_band=bands.lowest(conn))


def preview(ctx: AppContext, raw_rules: dict[str, Any], *, sample: int = 20) -> Preview:
    """How many contacts a rule matches now, and the first ``sample`` of them; nothing is saved."""
    rule = rules.parse(raw_rules)
    with ctx.db.read() as conn:
        _check_references(conn, "__preview__", rule)
        matching = _compiler(conn, ctx).select_ids(rule).subquery()
        count = conn.execute(sa.select(sa.func.count()).select_from(matching)).scalar_one()
        first = [
            row[0] for row in conn.execute(sa.select(matching.c.id).order_by(matching.c.id).limit(sample))
        ]
        found = {c.id: c for c in contact_queries.by_ids(conn, first)}
    return Preview(count=int(count), contacts=[found[i] for i in first if i in found])


def refresh(ctx: AppContext, segment_id: str) -> Refreshed:
    """Recompute a dynamic segment now (its entries and exits flow into the pipeline)."""
    with ctx.db.write() as conn:
        change = refresh_in(conn, ctx, _row(conn, segment_id))
    ctx.signals.announce("events")
    return Refreshed(
        segment_id=change.segment_id, entered=change.entered, exited=change.exited, members=change.members
    )


def refresh_in(conn: Connection, ctx: AppContext, row: Any) -> membership.Change:
    if row.kind != "dynamic":
        raise Invalid("a static list is changed by adding and removing members", code="static_segment")
    now = ctx.clock.now()
    query = _compiler(conn, ctx).select_ids(rules.parse(row.rules))
    change = membership.refresh(conn, row, query, now)
    interval = timedelta(seconds=row.refresh_interval_seconds) if row.time_relative else SAFETY_REFRESH
    conn.execute(segments.update().where(segments.c.id == row.id).values(next_refresh_at=now + interval))
    return change


def members(ctx: AppContext, segment_id: str, *, after: str | None, limit: int) -> list[Member]:
    m = segment_members.c
    with ctx.db.read() as conn:
        _row(conn, segment_id)
        query = sa.select(m.contact_id, m.entered_at).where(m.segment_id == segment_id).order_by(m.contact_id)
        if after:
            query = query.where(m.contact_id > after)
        rows = conn.execute(query.limit(limit)).all()
        found = {c.id: c for c in contact_queries.by_ids(conn, [r.contact_id for r in rows])}
    return [
        Member(contact=found[r.contact_id], entered_at=r.entered_at) for r in rows if r.contact_id in found
    ]


def of_contact(ctx: AppContext, contact_id: str) -> list[ContactSegment]:
    m = segment_members.c
    with ctx.db.read() as conn:
        live = contact_queries.get(conn, contact_id).id
        query = (
            sa.select(m.segment_id, segments.c.name, segments.c.kind, m.entered_at)
            .join(segments, segments.c.id == m.segment_id)
            .where(m.contact_id == live)
            .order_by(segments.c.name)
        )
        return [
            ContactSegment(segment_id=r.segment_id, name=r.name, kind=r.kind, entered_at=r.entered_at)
            for r in conn.execute(query)
        ]


def change_static(
    ctx: AppContext, segment_id: str, add: Sequence[str], remove: Sequence[str], *, actor: str
) -> Refreshed:
    """Add and remove members of a static list (unknown contacts are refused; merged ids resolve)."""
    with ctx.db.write() as conn:
        changed = change_static_in(conn, ctx, segment_id, add, remove, actor=actor)
    ctx.signals.announce("events")
    return changed


def change_static_in(
    conn: Connection,
    ctx: AppContext,
    segment_id: str,
    add: Sequence[str],
    remove: Sequence[str],
    *,
    actor: str,
) -> Refreshed:
    """:func:`change_static` in the caller's transaction (a CSV import adds each chunk's contacts in the
    chunk's own transaction); the caller announces ``events`` after committing."""
    row = _row(conn, segment_id)
    if row.kind != "static":
        raise Invalid("members of a dynamic segment follow its rules", code="dynamic_segment")
    membership.lock(conn, segment_id)
    wanted_in = _live_ids(conn, add)
    wanted_out = _live_ids(conn, remove)
    m = segment_members.c
    present = {
        r[0]
        for r in conn.execute(
            sa.select(m.contact_id).where(
                m.segment_id == segment_id, m.contact_id.in_(sorted(wanted_in | wanted_out))
            )
        )
    }
    entered, exited = sorted(wanted_in - present), sorted((wanted_out & present) - wanted_in)
    membership.apply(conn, row, entered, exited, ctx.clock.now())
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action="segment.members_changed",
        entity_type="segment",
        entity_id=segment_id,
        data={"added": entered, "removed": exited},
    )
    total = conn.execute(sa.select(segments.c.member_count).where(segments.c.id == segment_id)).scalar_one()
    return Refreshed(segment_id=segment_id, entered=len(entered), exited=len(exited), members=int(total))


def _live_ids(conn: Connection, contact_ids: Sequence[str]) -> set[str]:
    found = contact_queries.live_ids(conn, contact_ids)
    missing = [c for c in contact_ids if c not in found]
    if missing:
        raise NotFound(f"no contact {', '.join(missing[:5])}", code="contact_not_found")
    return set(found.values())


__all__ = [
    "Contact",
    "change_static",
    "change_static_in",
    "create",
    "delete",
    "get",
    "listing",
    "members",
    "of_contact",
    "preview",
    "refresh",
    "update",
]


def on_contacts_merged(conn: Connection, message: Any) -> None:
    """The survivor takes the merged contact's memberships; where both were members, one membership goes."""
    m = segment_members.c
    for loser, survivor in message.pairs:
        shared = sa.select(m.segment_id).where(m.contact_id == survivor).scalar_subquery()
        conn.execute(
            segment_members.update()
            .where(m.contact_id == loser, m.segment_id.not_in(shared))
            .values(contact_id=survivor)
        )
        doubled = sa.select(m.segment_id).where(m.contact_id == loser).scalar_subquery()
        conn.execute(
            segments.update()
            .where(segments.c.id.in_(doubled))
            .values(member_count=segments.c.member_count - 1)
        )
        conn.execute(segment_members.delete().where(m.contact_id == loser))


def on_contacts_erased(conn: Connection, message: Any) -> None:
    m = segment_members.c
    for contact_id in message.contact_ids:
        held = sa.select(m.segment_id).where(m.contact_id == contact_id).scalar_subquery()
        conn.execute(
            segments.update().where(segments.c.id.in_(held)).values(member_count=segments.c.member_count - 1)
        )
        conn.execute(segment_members.delete().where(m.contact_id == contact_id))


def refresh_due(ctx: AppContext, *, limit: int = 10) -> list[membership.Change]:
    """Refresh the dynamic segments whose time has come (new ones, time-relative ones, the daily pass).

    Each is refreshed in its own transaction under its segment lock; a segment another worker has just
    refreshed is no longer due and is skipped.
    """
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        due = list(
            conn.execute(
                sa.select(segments.c.id)
                .where(segments.c.kind == "dynamic", segments.c.next_refresh_at <= now)
                .order_by(segments.c.next_refresh_at)
                .limit(limit)
            ).scalars()
        )
    done: list[membership.Change] = []
    for segment_id in due:
        with ctx.db.write() as conn:
            membership.lock(conn, segment_id)
            row = conn.execute(sa.select(segments).where(segments.c.id == segment_id)).first()
            if row is None or row.next_refresh_at is None or row.next_refresh_at > ctx.clock.now():
                continue
            done.append(refresh_in(conn, ctx, row))
    if done:
        ctx.signals.announce("events")
    return done


def resolve(conn: Connection, id_or_key: str) -> str | None:
    """A segment's id, given its id or its key."""
    query = sa.select(segments.c.id).where(sa.or_(segments.c.id == id_or_key, segments.c.key == id_or_key))
    found: str | None = conn.execute(query).scalar()
    return found


def matching(conn: Connection, raw_rule: dict[str, Any], contact_ids: Sequence[str], now: Any) -> set[str]:
    """Which of ``contact_ids`` the rule matches at ``now`` (journey branches), in one query."""
    if not contact_ids:
        return set()
    compiler = Compiler(conn.dialect.name, now, lowest_band=bands.lowest(conn))
    return set(conn.execute(compiler.select_ids(rules.parse(raw_rule), list(contact_ids))).scalars())


def matching_events(
    conn: Connection, event_ids: Sequence[int], behaviour: rules.Behaviour, now: Any
) -> set[int]:
    """Which of ``event_ids`` are occurrences of ``behaviour`` (its event name and property conditions),
    in one query: journey triggers, exits and goals share the segment language's semantics."""
    if not event_ids:
        return set()
    query = sa.select(events.c.id).where(*event_conditions(conn, events, behaviour, now))
    return set(conn.execute(where_in(conn, query, events.c.id, list(event_ids))).scalars())


def event_conditions(conn: Connection, table: Any, behaviour: rules.Behaviour, now: Any) -> list[Any]:
    """The SQL conditions an event row of ``table`` meets to be an occurrence of ``behaviour``."""
    return Compiler(conn.dialect.name, now, lowest_band="cold").event_filter(table, behaviour)


def member_ids(conn: Connection, segment_id: str, *, after: str = "", limit: int = 5_000) -> list[str]:
    """One page of a segment's member ids, in id order after ``after`` (keyset pagination: callers
    walk a million members in bounded memory)."""
    query = (
        sa.select(segment_members.c.contact_id)
        .where(segment_members.c.segment_id == segment_id, segment_members.c.contact_id > after)
        .order_by(segment_members.c.contact_id)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def memberships_of(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The segments these contacts are in, with when they entered (GDPR export)."""
    m = segment_members.c
    query = (
        sa.select(m.contact_id, m.segment_id, segments.c.key, segments.c.name, m.entered_at)
        .join(segments, segments.c.id == m.segment_id)
        .where(m.contact_id.in_(list(contact_ids)))
        .order_by(segments.c.name, m.segment_id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]
