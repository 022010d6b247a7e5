"""Analytics SQL: the rollup statements (one event-id range at a time) and the reads of the rollups.

Every rollup statement reads the events of ``(:after, :upto]`` whose ``timestamp >= :since`` and adds
its counts to the rollup rows (``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE`` adding), so a
batch is a fixed number of statements whatever its size.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.analytics.models import (
    analytics_daily,
    analytics_hourly,
    analytics_marks,
    analytics_stage_entries,
)
from leadflow.contacts.service import touchpoints
from leadflow.events.service import event_log
from leadflow.kernel.db import Sample, insert_for
from leadflow.kernel.types import UTCDateTime

_e = event_log.c
_s = analytics_stage_entries.c
STAGE_CHANGED = "leadflow.stage_changed"
EMAIL_PREFIX = "leadflow.email_"
DIMENSIONS = ("template", "journey", "step", "broadcast")
LINK = "link"  # clicks by link: key ``<template_id>|<url>`` (cut to the key's 255 characters)
SEP = "|"  # between source, medium and campaign in a ``utm`` key

_AFTER = sa.bindparam("after", type_=sa.BigInteger())
_UPTO = sa.bindparam("upto", type_=sa.BigInteger())
_SINCE = sa.bindparam("since", type_=UTCDateTime())


def _in_range() -> sa.ColumnElement[bool]:
    return sa.and_(_e.id > _AFTER, _e.id <= _UPTO, _e.timestamp >= _SINCE)


def _bucket(dialect: str, hourly: bool, column: Any) -> Any:
    """The UTC day (a date) or the start of the UTC hour of a timestamp column."""
    if dialect == "postgresql":
        utc = sa.func.timezone("UTC", column)
        if hourly:
            return sa.func.timezone("UTC", sa.func.date_trunc("hour", utc))
        return sa.cast(utc, sa.Date)
    if hourly:
        return sa.func.strftime("%Y-%m-%d %H:00:00.000000", column)
    return sa.func.date(column)


def _table(hourly: bool) -> sa.Table:
    return analytics_hourly if hourly else analytics_daily


def _add(dialect: str, hourly: bool, select: sa.Select[Any]) -> Any:
    """Add the counts of ``select`` (bucket, metric, dimension, key, count, value) to the rollup."""
    table = _table(hourly)
    columns = [
        table.c[name] for name in (_bucket_name(hourly), "metric", "dimension", "key", "count", "value")
    ]
    insert = insert_for(dialect, table).from_select(columns, select)
    return insert.on_conflict_do_update(
        index_elements=[_bucket_name(hourly), "metric", "dimension", "key"],
        set_={
            "count": table.c.count + insert.excluded["count"],
            "value": table.c.value + insert.excluded["value"],
        },
    )


def _bucket_name(hourly: bool) -> str:
    return "hour" if hourly else "day"


# --- stage entries: the first entry of each contact into each stage (first by event id) ------------


def _first_touch(column: str) -> Any:
    """The contact's first page touchpoint recorded up to the event (leads by source/UTM: the page
    view that brought them, as before tracked-event and email-click touches were recorded too)."""
    t = touchpoints.c
    return (
        sa.select(t[column])
        .where(t.contact_id == _e.contact_id, t.event_id <= _e.id, t.kind == "page")
        .order_by(t.occurred_at, t.id)
        .limit(1)
        .scalar_subquery()
    )


def enter_stages(dialect: str) -> Any:
    """``leadflow.stage_changed`` events → stage entries; an entry already recorded stays."""
    stage = _e.properties["to"].as_string()
    firsts = (
        sa.select(sa.func.min(_e.id))
        .where(_in_range(), _e.event == STAGE_CHANGED, _e.contact_id.is_not(None), stage.is_not(None))
        .group_by(_e.contact_id, stage)
    )
    is_lead = stage == "lead"
    select = sa.select(
        _e.contact_id,
        sa.func.substr(stage, 1, 16),
        _e.timestamp,
        _e.id,
        *[
            sa.case((is_lead, _first_touch(name)), else_=sa.null())
            for name in ("source", "medium", "campaign")
        ],
    ).where(_e.id.in_(firsts))
    return _insert_entries(dialect, select)


def enter_visitors(dialect: str) -> Any:
    """A contact's first event from outside (not ``internal``) is its entry as a visitor."""
    firsts = (
        sa.select(sa.func.min(_e.id))
        .where(_in_range(), _e.contact_id.is_not(None), _e.source != "internal")
        .group_by(_e.contact_id)
    )
    select = sa.select(
        _e.contact_id, sa.literal("visitor"), _e.timestamp, _e.id, sa.null(), sa.null(), sa.null()
    ).where(_e.id.in_(firsts))
    return _insert_entries(dialect, select)


def _insert_entries(dialect: str, select: sa.Select[Any]) -> Any:
    columns = ["contact_id", "stage", "entered_at", "event_id", "source", "medium", "campaign"]
    insert = insert_for(dialect, analytics_stage_entries).from_select(columns, select)
    return insert.on_conflict_do_nothing(index_elements=["contact_id", "stage"])


def _entries_in_range() -> sa.ColumnElement[bool]:
    return sa.and_(_s.event_id > _AFTER, _s.event_id <= _UPTO, _s.entered_at >= _SINCE)


def _dimensions(*names: str) -> Any:
    """A one-column table (``dim``) of the dimension names: a range is read once and counted once per
    dimension (a fixed number of statements per batch, each scanning the range once)."""
    return sa.union_all(*[sa.select(sa.literal(name).label("dim")) for name in names]).subquery("dims")


def entry_counts(dialect: str, hourly: bool) -> Any:
    """``stage.entered`` by stage, and ``leads`` by ``utm`` (source|medium|campaign of the first
    touch): the entries recorded by this range's events, in one statement."""
    dims = _dimensions("stage", "utm")
    is_stage = dims.c.dim == "stage"
    metric = sa.case((is_stage, sa.literal("stage.entered")), else_=sa.literal("leads"))
    key = sa.case((is_stage, _s.stage), else_=utm_key())
    bucket = _bucket(dialect, hourly, _s.entered_at)
    where = sa.and_(_entries_in_range(), sa.or_(is_stage, _s.stage == "lead"))
    select = (
        sa.select(bucket, metric, dims.c.dim, key, sa.func.count(), sa.cast(sa.literal(0.0), sa.Float))
        .select_from(analytics_stage_entries.join(dims, sa.true()))
        .where(where)
        .group_by(bucket, metric, dims.c.dim, key)
    )
    return _add(dialect, hourly, select)


def utm_key() -> Any:
    parts = [
        sa.func.coalesce(_s.source, "(direct)"),
        sa.func.coalesce(_s.medium, "(none)"),
        sa.func.coalesce(_s.campaign, "(none)"),
    ]
    return sa.func.substr(parts[0].concat(SEP).concat(parts[1]).concat(SEP).concat(parts[2]), 1, 255)


# --- email: leadflow.email_<status> events, total and by template, journey, step, broadcast ----------


def _email_metric() -> Any:
    status = sa.func.substr(_e.event, len(EMAIL_PREFIX) + 1, 40)
    machine = _e.properties["machine_generated"].as_boolean()
    return sa.literal("email.").concat(status).concat(sa.case((machine.is_(sa.true()), ".machine"), else_=""))


def _email_key(dimension: str) -> Any:
    props = _e.properties
    if dimension == "":
        return sa.literal("")
    if dimension == "step":
        journey, step = props["journey_id"].as_string(), props["step_id"].as_string()
        return sa.func.substr(journey.concat(":").concat(step), 1, 255)
    if dimension == LINK:  # only clicks carry the url (a person's first, a machine's first)
        template, url = props["template_id"].as_string(), props["url"].as_string()
        return sa.func.substr(template.concat(SEP).concat(url), 1, 255)
    return sa.func.substr(props[f"{dimension}_id"].as_string(), 1, 255)


def event_counts(dialect: str, hourly: bool) -> Any:
    """One statement for the event log's counts of a range: ``email.<status>`` (``.machine`` for a
    machine-generated open or click) in total and by template, journey, step, broadcast and link, and
    ``track`` by event name for events from outside (conversions: ``Signed Up``, ``order.completed``
    …). ``value`` is 0 here; revenue adds its own metric rows (``revenue`` by event) — no new column."""
    dims = _dimensions("", *DIMENSIONS, LINK, "event")
    email_dims = ("", *DIMENSIONS, LINK)
    is_track = dims.c.dim == "event"
    key = sa.case(
        *[(dims.c.dim == name, _email_key(name)) for name in email_dims],
        (is_track, sa.func.substr(_e.event, 1, 255)),
        else_=sa.null(),
    )
    metric = sa.case((is_track, sa.literal("track")), else_=_email_metric())
    email = sa.and_(sa.not_(is_track), _e.event.like(EMAIL_PREFIX + "%"))
    track = sa.and_(is_track, _e.type == "track", _e.source != "internal", _e.event.is_not(None))
    bucket = _bucket(dialect, hourly, _e.timestamp)
    select = (
        sa.select(bucket, metric, dims.c.dim, key, sa.func.count(), sa.cast(sa.literal(0.0), sa.Float))
        .select_from(event_log.join(dims, sa.true()))
        .where(_in_range(), sa.or_(email, track), key.is_not(None))
        .group_by(bucket, metric, dims.c.dim, key)
    )
    return _add(dialect, hourly, select)


def batch_statements(dialect: str) -> list[Any]:
    """Every statement of one rollup batch, in order (stage entries before the counts over them): seven,
    whatever the batch's size, each reading the range once."""
    found: list[Any] = [enter_stages(dialect), enter_visitors(dialect)]
    for hourly in (False, True):
        found += [entry_counts(dialect, hourly), event_counts(dialect, hourly)]
    found.append(gap_counts(dialect))
    return found


# --- the mark and the range -----------------------------------------------------------------------

GET_MARK = sa.select(analytics_marks.c.mark).where(analytics_marks.c.name == sa.bindparam("name"))
MAX_EVENT_ID = sa.select(sa.func.max(_e.id))
NEXT_EVENT_ID = sa.select(sa.func.min(_e.id)).where(_e.id > sa.bindparam("mark", type_=sa.BigInteger()))
FIRST_PENDING_ID = sa.select(sa.func.min(_e.id)).where(_e.processed_at.is_(None))
FIRST_RECENT_ID = sa.select(sa.func.min(_e.id)).where(
    _e.id > sa.bindparam("after", type_=sa.BigInteger()),
    _e.id <= sa.bindparam("upto", type_=sa.BigInteger()),
    _e.received_at > sa.bindparam("cutoff", type_=UTCDateTime()),
)


#: PostgreSQL: one snapshot for the whole batch, so every statement of it, the holes it records and the
#: late events it picks up see the same committed events (READ COMMITTED takes one per statement).
SNAPSHOT = sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
GAP = "gap "  # analytics_marks rows named ``gap <first id>`` (mark: the last id) are holes in the ids
GAPS = (
    sa.select(analytics_marks.c.name, analytics_marks.c.mark, analytics_marks.c.updated_at)
    .where(analytics_marks.c.name.startswith(GAP))
    .order_by(analytics_marks.c.mark)
)


def holes() -> sa.Select[Any]:
    """The ids of ``(:after, :upto]`` no visible event has (``lo``, ``hi`` per run of missing ids):
    taken by a transaction not committed yet, rolled back, or never used."""
    ids = sa.select(_e.id.label("id")).where(_e.id > _AFTER, _e.id <= _UPTO)
    both = sa.union_all(ids, sa.select((_UPTO + 1).label("id"))).subquery()
    lag = sa.func.lag(both.c.id, 1, _AFTER).over(order_by=both.c.id)
    lagged = sa.select(both.c.id, lag.label("prev")).subquery()
    return sa.select((lagged.c.prev + 1).label("lo"), (lagged.c.id - 1).label("hi")).where(
        lagged.c.id > lagged.c.prev + 1
    )


def present() -> sa.Select[Any]:
    """The events now visible in the open holes, in id order, and whether the processor has handled
    each: an index range read per hole, whatever their number (the statement does not grow with them)."""
    m = analytics_marks.c
    first = sa.cast(sa.func.substr(m.name, len(GAP) + 1), sa.BigInteger)
    return (
        sa.select(_e.id, _e.processed_at.is_not(None).label("done"))
        .select_from(analytics_marks.join(event_log, sa.and_(_e.id >= first, _e.id <= m.mark)))
        .where(m.name.startswith(GAP))
        .order_by(_e.id)
    )


def forget_gaps(names: list[str]) -> Any:
    return analytics_marks.delete().where(analytics_marks.c.name.in_(names))


def set_mark(dialect: str) -> Any:
    insert = insert_for(dialect, analytics_marks).values(
        name=sa.bindparam("name"),
        mark=sa.bindparam("mark"),
        updated_at=sa.bindparam("at", type_=UTCDateTime()),
    )
    return insert.on_conflict_do_update(
        index_elements=["name"], set_={"mark": insert.excluded.mark, "updated_at": insert.excluded.updated_at}
    )


DELETE_MARKS = analytics_marks.delete()
DELETE_DAILY_FROM = analytics_daily.delete().where(
    analytics_daily.c.day >= sa.bindparam("day", type_=sa.Date())
)
DELETE_HOURLY_FROM = analytics_hourly.delete().where(
    analytics_hourly.c.hour >= sa.bindparam("since", type_=UTCDateTime())
)
DELETE_ENTRIES_FROM = analytics_stage_entries.delete().where(
    _s.entered_at >= sa.bindparam("since", type_=UTCDateTime())
)


def forget_entries(contact_ids: list[str]) -> Any:
    return analytics_stage_entries.delete().where(_s.contact_id.in_(contact_ids))


# --- reads ----------------------------------------------------------------------------------------

_d = analytics_daily.c


def sums(metrics: list[str] | None, dimension: str, *, prefix: str | None = None) -> sa.Select[Any]:
    """Sums of ``count`` and ``value`` per metric and key over ``[:start, :end)`` days of one dimension;
    the metrics named, or those starting with ``prefix``."""
    condition = (
        sa.or_(*[_d.metric == m for m in metrics]) if metrics is not None else _d.metric.like(f"{prefix}%")
    )
    return (
        sa.select(_d.metric, _d.key, sa.func.sum(_d.count).label("n"), sa.func.sum(_d.value).label("amount"))
        .where(
            _d.day >= sa.bindparam("start", type_=sa.Date()),
            _d.day < sa.bindparam("end", type_=sa.Date()),
            _d.dimension == dimension,
            condition,
        )
        .group_by(_d.metric, _d.key)
    )


def link_sums(template_id: str) -> sa.Select[Any]:
    """Clicks (``email.clicked`` and ``.machine``) per link of one template over ``[:start, :end)`` days.
    The two metrics are named, not matched with ``LIKE 'email.clicked%'``: a pattern cannot use the
    ``(metric, dimension, day)`` index under a non-C collation, and the read then went through every
    rollup row of the period."""
    return (
        sa.select(_d.metric, _d.key, sa.func.sum(_d.count).label("n"))
        .where(
            _d.day >= sa.bindparam("start", type_=sa.Date()),
            _d.day < sa.bindparam("end", type_=sa.Date()),
            _d.dimension == LINK,
            sa.or_(_d.metric == "email.clicked", _d.metric == "email.clicked.machine"),
            _d.key.startswith(f"{template_id}{SEP}", autoescape=True),
        )
        .group_by(_d.metric, _d.key)
    )


def hourly(metric: str, dimension: str) -> sa.Select[Any]:
    h = analytics_hourly.c
    return (
        sa.select(h.hour, h.key, h.count, h.value)
        .where(
            h.metric == metric, h.dimension == dimension, h.hour >= sa.bindparam("since", type_=UTCDateTime())
        )
        .order_by(h.hour, h.key)
    )


ALL_DAILY = sa.select(analytics_daily).order_by(_d.day, _d.metric, _d.dimension, _d.key)
ALL_HOURLY = sa.select(analytics_hourly).order_by(
    analytics_hourly.c.hour, analytics_hourly.c.metric, analytics_hourly.c.dimension, analytics_hourly.c.key
)
ALL_ENTRIES = sa.select(analytics_stage_entries).order_by(_s.contact_id, _s.stage)


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


def stage_gaps(dialect: str) -> tuple[Any, Any]:
    """For contacts who entered ``:to_stage`` in ``[:start, :end)`` after entering ``:from_stage``: how
    many, and (ordered, ``:offset``/``:limit``) the seconds between the two entries (the median)."""
    a, b = analytics_stage_entries.alias("a"), analytics_stage_entries.alias("b")
    joined = a.join(b, sa.and_(a.c.contact_id == b.c.contact_id, b.c.stage == sa.bindparam("to_stage")))
    where = sa.and_(
        a.c.stage == sa.bindparam("from_stage"),
        b.c.entered_at >= sa.bindparam("start", type_=UTCDateTime()),
        b.c.entered_at < sa.bindparam("end", type_=UTCDateTime()),
        b.c.entered_at >= a.c.entered_at,
    )
    seconds = _seconds(dialect, b.c.entered_at, a.c.entered_at)
    count = sa.select(sa.func.count()).select_from(joined).where(where)
    values = (
        sa.select(seconds.label("seconds"))
        .select_from(joined)
        .where(where)
        .order_by(seconds)
        .offset(sa.bindparam("offset"))
        .limit(sa.bindparam("limit"))
    )
    return count, values


def stage_medians(pairs: list[tuple[str, str]]) -> sa.Select[Any]:
    """PostgreSQL: for every pair (earlier, later) of ``pairs`` at once, the median seconds between the
    two entries of the contacts who entered the later stage in ``[:start, :end)`` and in ``[:pstart,
    :pend)`` having entered the earlier before (``percentile_cont(0.5)``: the mean of the two middle
    values of an even count, as :func:`stage_gaps` gives) — one pass over the entries instead of a
    count and an ordered read per pair and period. Columns: stage (the later), current, previous."""
    a, b = analytics_stage_entries.alias("a"), analytics_stage_entries.alias("b")
    seconds = sa.func.extract("epoch", b.c.entered_at - a.c.entered_at)
    start, end = sa.bindparam("start", type_=UTCDateTime()), sa.bindparam("end", type_=UTCDateTime())
    pstart, pend = sa.bindparam("pstart", type_=UTCDateTime()), sa.bindparam("pend", type_=UTCDateTime())

    def median(low: Any, high: Any) -> Any:
        ordered = sa.func.percentile_cont(0.5).within_group(seconds)
        return sa.func.coalesce(ordered.filter(sa.and_(b.c.entered_at >= low, b.c.entered_at < high)), 0.0)

    pair = sa.or_(*[sa.and_(a.c.stage == earlier, b.c.stage == later) for earlier, later in pairs])
    joined = a.join(b, sa.and_(a.c.contact_id == b.c.contact_id, pair))
    return (
        sa.select(b.c.stage, median(start, end).label("current"), median(pstart, pend).label("previous"))
        .select_from(joined)
        .where(
            sa.or_(*[b.c.stage == later for _, later in pairs]),
            sa.or_(
                sa.and_(b.c.entered_at >= start, b.c.entered_at < end),
                sa.and_(b.c.entered_at >= pstart, b.c.entered_at < pend),
            ),
            b.c.entered_at >= a.c.entered_at,
        )
        .group_by(b.c.stage)
    )


# --- stage-to-stage gaps: a histogram in log-spaced buckets per (pair, day), for approximate medians --

GAP_DIMENSION = "gap"  # metric ``gap:<earlier>><later>``, key: the bucket's index (see ``gap_bucket``)
GAP_BASE = 1.005  # bucket k holds gaps of [GAP_BASE**k, GAP_BASE**(k+1)) milliseconds: 0.5 % wide
GAP_ZERO = -1  # the bucket of gaps under a millisecond (read as 0)
GAP_PAIRS = (
    ("visitor", "lead"),
    ("lead", "mql"),
    ("mql", "sql"),
    ("sql", "customer"),
    ("customer", "advocate"),
)


def gap_metric(earlier: str, later: str) -> str:
    return f"gap:{earlier}>{later}"


def gap_bucket(dialect: str, later: Any, earlier: Any) -> Any:
    """The histogram bucket (as a key) of the time between two entries: ``floor(log_base(ms))``."""
    ms = sa.cast(_seconds(dialect, later, earlier), sa.Float) * 1000.0
    index = sa.case(
        (ms < 1.0, sa.literal(GAP_ZERO)),
        else_=sa.cast(sa.func.floor(sa.func.ln(ms) / math.log(GAP_BASE)), sa.Integer),
    )
    return sa.cast(index, sa.String)


def gap_counts(dialect: str) -> Any:
    """Daily ``gap:<earlier>><later>`` rows (dimension ``gap``, key: bucket, on the later entry's day):
    for each contact with entries into both stages of a consecutive pair, the later not before the
    earlier, one count in the bucket of the time between them — added by the batch that records the
    second of the two entries (the larger event id; one event may record both), so any split into
    batches, a late event from a hole and a rebuild count each pair once."""
    a, b = analytics_stage_entries.alias("a"), analytics_stage_entries.alias("b")
    # the other entry of the pair by primary key (contact, stage computed from the driving row): an
    # OR of stage pairs made PostgreSQL read every entry of those stages per row
    earlier_of = sa.case(*[(b.c.stage == later, earlier) for earlier, later in GAP_PAIRS], else_=sa.null())
    later_of = sa.case(*[(a.c.stage == earlier, later) for earlier, later in GAP_PAIRS], else_=sa.null())
    base = sa.and_(b.c.entered_at >= a.c.entered_at, b.c.entered_at >= _SINCE)
    later_last = sa.and_(b.c.event_id > _AFTER, b.c.event_id <= _UPTO, a.c.event_id <= b.c.event_id)
    earlier_last = sa.and_(a.c.event_id > _AFTER, a.c.event_id <= _UPTO, b.c.event_id < a.c.event_id)
    columns = [
        _bucket(dialect, False, b.c.entered_at).label("day"),
        sa.literal("gap:").concat(a.c.stage).concat(">").concat(b.c.stage).label("metric"),
        gap_bucket(dialect, b.c.entered_at, a.c.entered_at).label("key"),
    ]
    by_later = b.join(a, sa.and_(a.c.contact_id == b.c.contact_id, a.c.stage == earlier_of))
    by_earlier = a.join(b, sa.and_(b.c.contact_id == a.c.contact_id, b.c.stage == later_of))
    both = sa.union_all(
        sa.select(*columns).select_from(by_later).where(base, later_last),
        sa.select(*columns).select_from(by_earlier).where(base, earlier_last),
    ).subquery("gaps")
    select = sa.select(
        both.c.day,
        both.c.metric,
        sa.literal(GAP_DIMENSION),
        both.c.key,
        sa.func.count(),
        sa.cast(sa.literal(0.0), sa.Float),
    ).group_by(both.c.day, both.c.metric, both.c.key)
    return _add(dialect, False, select)


def stage_entrants(stage: str, start: datetime, end: datetime, utm: str | None = None) -> sa.Select[Any]:
    """``SELECT contact_id`` of the contacts whose first entry into ``stage`` is in ``[start, end)``:
    the contacts behind a lifecycle KPI; with ``utm`` (a ``leads`` rollup key) only those of that
    first touch (a row of leads by source)."""
    query = sa.select(_s.contact_id).where(_s.stage == stage, _s.entered_at >= start, _s.entered_at < end)
    return query if utm is None else query.where(utm_key() == utm)


_DAY = date(2026, 1, 1)
_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    *[(lambda d=d: batch_statements(d)) for d in ("sqlite", "postgresql")],
    *[(lambda d=d: set_mark(d)) for d in ("sqlite", "postgresql")],
    holes,
    present,
    lambda: forget_gaps(["gap 1"]),
    *[(lambda d=d: list(stage_gaps(d))) for d in ("sqlite", "postgresql")],
    lambda: stage_medians([("lead", "mql"), ("mql", "sql")]),
    *[(lambda d=d: gap_counts(d)) for d in ("sqlite", "postgresql")],
    lambda: sums([gap_metric("lead", "mql")], GAP_DIMENSION),
    lambda: sums(["stage.entered"], "stage"),
    lambda: sums(None, "template", prefix="email."),
    lambda: hourly("stage.entered", "stage"),
    lambda: link_sums("t1"),
    lambda: forget_entries(["c1"]),
    lambda: stage_entrants("lead", _AT, _AT),
    lambda: stage_entrants("lead", _AT, _AT, "google|cpc|spring"),
]
