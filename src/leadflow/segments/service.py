"""What other domains and the API may do with segments: the one module they import.

Besides segments' own operations it hands out the rule language (:func:`parse_rule`, :class:`Compiler`,
:func:`parse_duration`), which scoring rules and journey conditions share.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import copy_rows, time_limit
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.segments import dependencies, durations, membership, queries, rules
from leadflow.segments.compiler import Compiler as Compiler
from leadflow.segments.compiler import lowest_band as lowest_band
from leadflow.segments.fields import COMPANY_COLUMNS as COMPANY_COLUMNS
from leadflow.segments.fields import CONTACT_COLUMNS as CONTACT_COLUMNS
from leadflow.segments.fields import SCORE_COLUMNS as SCORE_COLUMNS
from leadflow.segments.membership import Change as Change
from leadflow.segments.queries import members_after as members_after
from leadflow.segments.rules import ALLOWED_BY_KIND as ALLOWED_BY_KIND
from leadflow.segments.rules import COUNT_OPS as COUNT_OPS
from leadflow.segments.rules import EMAIL_EVENTS as EMAIL_EVENTS
from leadflow.segments.rules import Behaviour as Behaviour
from leadflow.segments.schemas import DEFAULT_REFRESH as DEFAULT_REFRESH
from leadflow.segments.schemas import ContactSegment as ContactSegment
from leadflow.segments.schemas import Member as Member
from leadflow.segments.schemas import Preview as Preview
from leadflow.segments.schemas import Refreshed as Refreshed
from leadflow.segments.schemas import Segment as Segment
from leadflow.segments.schemas import SegmentCreate as SegmentCreate
from leadflow.segments.schemas import SegmentPatch as SegmentPatch

SAFETY_REFRESH = timedelta(days=1)  # every dynamic segment is recomputed at least daily


def _row(conn: Connection, segment_id: str) -> Any:
    row = conn.execute(queries.SEGMENT, {"segment_id": segment_id}).first()
    if row is None:
        raise NotFound(f"no segment {segment_id}", code="segment_not_found")
    return row


def _view(row: Any) -> Segment:
    return Segment.model_validate(dict(row._mapping))


def _references(conn: Connection) -> dict[str, set[str]]:
    rows = conn.execute(queries.REFERENCES).all()
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
        if key is not None and conn.execute(queries.ID_BY_KEY, {"key": key}).first():
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
        conn.execute(queries.INSERT, row)
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
        conn.execute(queries.change(segment_id, values))
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
        conn.execute(queries.DELETE_MEMBERS, {"segment_id": segment_id})
        conn.execute(queries.DELETE, {"segment_id": segment_id})
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
    row = conn.execute(queries.SEGMENT_BY_KEY, {"key": key}).first()
    return _view(row) if row else None


def id_of_key(conn: Connection, key: str) -> str | None:
    """The id of the segment with this key (shipped and system segments have one), if it exists."""
    found: str | None = conn.execute(queries.ID_BY_KEY, {"key": key}).scalar()
    return found


def rules_by_key(conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
    """The stored rules of the segments with these keys, by key (those that exist)."""
    return {row.key: row.rules for row in conn.execute(queries.rules_by_key(keys))}


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Segment]:
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(queries.listing(after, limit))]


def _compiler(conn: Connection, ctx: AppContext) -> Compiler:
    return Compiler(conn.dialect.name, ctx.clock.now(), lowest_band=lowest_band(conn))


def preview(
    ctx: AppContext, raw_rules: dict[str, Any], *, sample: int = 20, timeout: float | None = None
) -> Preview:
    """How many contacts a rule matches now, and the first ``sample`` of them; nothing is saved.

    With ``timeout`` (seconds), counting and sampling are cancelled past it and
    :class:`leadflow.kernel.db.TimeLimit` (``time_limit``, 422) is raised: the console's live preview
    runs on every edit of a rule whose cost the user decides."""
    rule = rules.parse(raw_rules)
    with ctx.db.read() as conn:
        _check_references(conn, "__preview__", rule)
        counting, sampling = queries.preview(_compiler(conn, ctx).select_ids(rule), sample)
        with time_limit(conn, timeout, ctx.clock.monotonic) if timeout else nullcontext():
            count = conn.execute(counting).scalar_one()
            first = [row[0] for row in conn.execute(sampling)]
        found = {c.id: c for c in contacts.by_ids(conn, first)}
    return Preview(count=int(count), contacts=[found[i] for i in first if i in found])


def selection(conn: Connection, ctx: AppContext, raw_rules: Any) -> Any:
    """``SELECT contacts.id`` of the contacts a rule matches now, after the same validation as a
    segment's rules (``invalid_rule`` naming each offending path, unknown segments refused): the
    console's contacts list filters by any rule with it."""
    rule = rules.parse(raw_rules)
    _check_references(conn, "__selection__", rule)
    return _compiler(conn, ctx).select_ids(rule)


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
    conn.execute(queries.set_next_refresh(row.id, now + interval))
    return change


def members(ctx: AppContext, segment_id: str, *, after: str | None, limit: int) -> list[Member]:
    with ctx.db.read() as conn:
        _row(conn, segment_id)
        rows = conn.execute(queries.members_page(segment_id, after, limit)).all()
        found = {c.id: c for c in contacts.by_ids(conn, [r.contact_id for r in rows])}
    return [
        Member(contact=found[r.contact_id], entered_at=r.entered_at) for r in rows if r.contact_id in found
    ]


def of_contact(ctx: AppContext, contact_id: str) -> list[ContactSegment]:
    with ctx.db.read() as conn:
        live = contacts.get(conn, contact_id).id
        return [
            ContactSegment(segment_id=r.segment_id, name=r.name, kind=r.kind, entered_at=r.entered_at)
            for r in conn.execute(queries.CONTACT_SEGMENTS, {"contact_id": live})
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
    present = {r[0] for r in conn.execute(queries.present(segment_id, sorted(wanted_in | wanted_out)))}
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
    total = conn.execute(queries.MEMBER_COUNT, {"segment_id": segment_id}).scalar_one()
    return Refreshed(segment_id=segment_id, entered=len(entered), exited=len(exited), members=int(total))


def _live_ids(conn: Connection, contact_ids: Sequence[str]) -> set[str]:
    found = contacts.live_ids(conn, contact_ids)
    missing = [c for c in contact_ids if c not in found]
    if missing:
        raise NotFound(f"no contact {', '.join(missing[:5])}", code="contact_not_found")
    return set(found.values())


def on_contacts_merged(conn: Connection, message: Any) -> None:
    """The survivor takes the merged contact's memberships; where both were members, one membership goes."""
    for loser, survivor in message.pairs:
        conn.execute(queries.MOVE_MEMBERSHIPS, {"loser": loser, "survivor": survivor})
        conn.execute(queries.UNCOUNT_MEMBER, {"contact_id": loser})
        conn.execute(queries.DROP_MEMBERSHIPS, {"contact_id": loser})


def on_contacts_erased(conn: Connection, message: Any) -> None:
    for contact_id in message.contact_ids:
        conn.execute(queries.UNCOUNT_MEMBER, {"contact_id": contact_id})
        conn.execute(queries.DROP_MEMBERSHIPS, {"contact_id": contact_id})


def refresh_due(ctx: AppContext, *, limit: int = 10) -> list[membership.Change]:
    """Refresh the dynamic segments whose time has come (new ones, time-relative ones, the daily pass).

    Each is refreshed in its own transaction under its segment lock; a segment another worker has just
    refreshed is no longer due and is skipped.
    """
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        due = list(conn.execute(queries.due(now, limit)).scalars())
    done: list[membership.Change] = []
    for segment_id in due:
        with ctx.db.write() as conn:
            membership.lock(conn, segment_id)
            row = conn.execute(queries.SEGMENT, {"segment_id": segment_id}).first()
            if row is None or row.next_refresh_at is None or row.next_refresh_at > ctx.clock.now():
                continue
            done.append(refresh_in(conn, ctx, row))
    if done:
        ctx.signals.announce("events")
    return done


def resolve(conn: Connection, id_or_key: str) -> str | None:
    """A segment's id, given its id or its key."""
    found: str | None = conn.execute(queries.ID_BY_ID_OR_KEY, {"id_or_key": id_or_key}).scalar()
    return found


def matching(conn: Connection, raw_rule: dict[str, Any], contact_ids: Sequence[str], now: Any) -> set[str]:
    """Which of ``contact_ids`` the rule matches at ``now`` (journey branches), in one query."""
    if not contact_ids:
        return set()
    compiler = Compiler(conn.dialect.name, now, lowest_band=lowest_band(conn))
    return set(conn.execute(compiler.select_ids(rules.parse(raw_rule), list(contact_ids))).scalars())


def matching_events(conn: Connection, event_ids: Sequence[int], behaviour: Behaviour, now: Any) -> set[int]:
    """Which of ``event_ids`` are occurrences of ``behaviour`` (its event name and property conditions),
    in one query: journey triggers, exits and goals share the segment language's semantics."""
    if not event_ids:
        return set()
    compiler = Compiler(conn.dialect.name, now, lowest_band="cold")
    return set(conn.execute(compiler.select_event_ids(behaviour, event_ids)).scalars())


def event_conditions(conn: Connection, table: Any, behaviour: Behaviour, now: Any) -> list[Any]:
    """The SQL conditions an event row of ``table`` meets to be an occurrence of ``behaviour``."""
    return Compiler(conn.dialect.name, now, lowest_band="cold").event_filter(table, behaviour)


def member_ids(conn: Connection, segment_id: str, *, after: str = "", limit: int = 5_000) -> list[str]:
    """One page of a segment's member ids, in id order after ``after`` (keyset pagination: callers
    walk a million members in bounded memory)."""
    return list(conn.execute(queries.member_ids(segment_id, after, limit)).scalars())


def memberships_of(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The segments these contacts are in, with when they entered (GDPR export)."""
    return [dict(row._mapping) for row in conn.execute(queries.memberships_of(contact_ids))]


# --- what the journeys domain uses of the segment language ------------------------------------------


def parse_duration(text: str) -> timedelta:
    """A duration of the segment language (``90m``, ``2d``, ``3w``); ``ValueError`` names the forms."""
    return durations.parse(text)


def parse_rule(data: Any, *, root: str = "rules") -> Any:
    """A validated rule tree, or :class:`Invalid` (``invalid_rule``) naming each offending path."""
    return rules.parse(data, root=root)


def anniversary_ids(conn: Connection, field: str, now: Any) -> list[str]:
    """The contacts whose date ``field`` has its anniversary today (journeys' anniversary trigger)."""
    rule = rules.parse({"field": field, "op": "anniversary_today"})
    return list(conn.execute(Compiler(conn.dialect.name, now).select_ids(rule)).scalars())


def last_occurrences(
    conn: Connection, behaviour: Behaviour, contact_ids: Sequence[str], since: Any, now: Any
) -> dict[str, Any]:
    """For each of ``contact_ids`` that did ``behaviour`` at or after ``since``, when it last did, in one
    query (a journey's goal step)."""
    query = Compiler(conn.dialect.name, now, lowest_band="cold").last_occurrences(
        behaviour, contact_ids, since
    )
    return dict(conn.execute(query).all())


def copy_configuration(source: Connection, target: Connection) -> None:
    """Every segment definition, into another database (the journey simulator's scratch copy)."""
    copy_rows(source, target, queries.TABLE)


# --- what scoring uses of the segment language ---------------------------------------------------------


def dump_rule(rule: Any) -> dict[str, Any]:
    """A parsed rule in the JSON form to store."""
    return rules.dump(rule)


# --- what a CSV import uses (wired into contacts by leadflow.runtime.context) ---------------------------


def static_list(ctx: AppContext, segment_id: str) -> str:
    """The id of the static list ``segment_id`` names (``dynamic_segment`` if it follows rules)."""
    segment = get(ctx, segment_id)
    if segment.kind != "static":
        raise Invalid("contacts are imported into static lists", code="dynamic_segment")
    return segment.id


def add_to_static_list(
    conn: Connection, ctx: AppContext, segment_id: str, contact_ids: Sequence[str], actor: str
) -> int:
    """:func:`change_static_in` adding only; how many contacts were not members yet."""
    return change_static_in(conn, ctx, segment_id, contact_ids, [], actor=actor).entered
