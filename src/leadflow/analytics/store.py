"""Set-based reads for attribution, A/B readouts and journey funnels (issue 15): one statement for the
conversions of a period, one for their touchpoints, one for every split's exposures and conversions
(from the journeys' per-day split counters), two for a journey's funnel (from its per-day funnel
counters). Each counter read keeps, as ``*_from_runs``, the query over the raw runs it replaced: the
tests' and the bench's reference.

Touchpoints are one indexed table (``touchpoints``), written when the events are applied to their
profiles (``contacts/touchpoints.py``): the page views with UTM or an external referrer, the contact's own
``track`` events that carry a source (``context.campaign`` — forms and capture flows put the campaign
there — or ``lead.captured``'s ``source``/``utm``), and human email clicks (source and medium ``email``,
the journey or broadcast as campaign, the journey for ``by=journey``). The read therefore grows with
the converted contacts' touches, never with the event log; :func:`touches_from_events` keeps the read
from the raw events it replaced (the tests' reference).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.analytics import models
from leadflow.contacts.service import touchpoints
from leadflow.events.service import event_log
from leadflow.journeys.service import (
    journey_entry_daily,
    journey_reach_daily,
    journey_runs,
    journey_split_daily,
    journey_steps,
)
from leadflow.kernel.db import Sample, insert_for
from leadflow.kernel.types import UTCDateTime

_e = event_log.c
_t = touchpoints.c
STAGE_CHANGED = "leadflow.stage_changed"
EMAIL_CLICKED = "leadflow.email_clicked"
LEAD_CAPTURED = "lead.captured"

_START = sa.bindparam("start", type_=UTCDateTime())
_END = sa.bindparam("end", type_=UTCDateTime())
_SINCE = sa.bindparam("since", type_=UTCDateTime())


# PostgreSQL, for the attribution reads' transaction: no JIT (at 100k conversions the touchpoints read
# cost 3 s of JIT compilation for 2 to 4 s of execution) and room to sort the rows in memory.
ATTRIBUTION_SETTINGS = (sa.text("SET LOCAL jit = off"), sa.text("SET LOCAL work_mem = '64MB'"))
# The same for the A/B readouts' reference read from the raw runs (``splits_from_runs``): its split rows
# are sorted for their distinct counts (at 30k runs 3.4 MB spilled to disk) and JIT cost ~12 ms.
READOUT_SETTINGS = ATTRIBUTION_SETTINGS


def _human() -> Any:
    """A click by a person (a scanner's carries ``machine_generated: true``)."""
    return sa.func.coalesce(_e.properties["machine_generated"].as_boolean(), sa.false()) == sa.false()


def conversions(event: str | None, stage: str | None) -> sa.Select[Any]:
    """Conversions in ``[:start, :end)``: the events named ``event``, or the contacts entering
    lifecycle ``stage``; ordered by contact, then time."""
    if stage is not None:
        match = sa.and_(_e.event == STAGE_CHANGED, _e.properties["to"].as_string() == stage)
    else:
        match = _e.event == event
    return (
        sa.select(_e.contact_id, _e.timestamp, _e.properties)
        .where(match, _e.contact_id.is_not(None), _e.timestamp >= _START, _e.timestamp < _END)
        .order_by(_e.contact_id, _e.timestamp, _e.id)
    )


def _text(column: Any) -> Any:
    return sa.func.nullif(column.as_string(), "")


def _converted(event: str | None, stage: str | None) -> Any:
    return conversions(event, stage).with_only_columns(_e.contact_id).order_by(None).distinct().subquery()


def touches(event: str | None, stage: str | None) -> sa.Select[Any]:
    """The touchpoints of the contacts with a conversion in the period, from ``:since`` (the start
    less the lookback) to ``:end``, in the conversions' contact order; each conversion keeps its own
    window in Python. Columns: contact_id, at, source, medium, campaign, journey, ord."""
    converted = _converted(event, stage)
    return (
        sa.select(
            _t.contact_id,
            _t.occurred_at.label("at"),
            _t.source,
            _t.medium,
            _t.campaign,
            _t.journey,
            _t.event_id.label("ord"),
        )
        .where(
            _t.contact_id.in_(sa.select(converted.c.contact_id)),
            _t.occurred_at >= _SINCE,
            _t.occurred_at < _END,
        )
        .order_by(_t.contact_id, _t.occurred_at, _t.event_id)
    )


def touches_from_events(event: str | None, stage: str | None) -> sa.Select[Any]:
    """:func:`touches` read as before the touches were recorded at ingest: the page touchpoints and the
    raw events (a sequential scan of the event log at scale; the tests' reference). Values are the
    events' own, untrimmed and uncut."""
    converted = _converted(event, stage)
    pages = sa.select(
        _t.contact_id,
        _t.occurred_at.label("at"),
        _t.source,
        _t.medium,
        _t.campaign,
        sa.cast(sa.null(), sa.String).label("journey"),
        _t.event_id.label("ord"),
    ).where(
        _t.kind == "page",
        _t.contact_id.in_(sa.select(converted.c.contact_id)),
        _t.occurred_at >= _SINCE,
        _t.occurred_at < _END,
    )
    clicked = _e.event == EMAIL_CLICKED
    campaign_source = _text(_e.context[("campaign", "source")])
    source = sa.case(
        (clicked, sa.literal("email")),
        else_=sa.func.coalesce(
            campaign_source,
            _text(_e.properties[("utm", "utm_source")]),
            _text(_e.properties["source"]),
        ),
    )
    medium = sa.case(
        (clicked, sa.literal("email")),
        else_=sa.func.coalesce(
            _text(_e.context[("campaign", "medium")]), _text(_e.properties[("utm", "utm_medium")])
        ),
    )
    campaign = sa.case(
        (clicked, sa.func.coalesce(_text(_e.properties["journey_id"]), _text(_e.properties["broadcast_id"]))),
        else_=sa.func.coalesce(
            _text(_e.context[("campaign", "name")]), _text(_e.properties[("utm", "utm_campaign")])
        ),
    )
    journey = sa.case((clicked, _text(_e.properties["journey_id"])), else_=sa.cast(sa.null(), sa.String))
    tracked = sa.and_(
        _e.type == "track",
        _e.source != "internal",
        sa.or_(campaign_source.is_not(None), _e.event == LEAD_CAPTURED),
    )
    from_events = sa.select(
        _e.contact_id,
        _e.timestamp.label("at"),
        source.label("source"),
        medium.label("medium"),
        campaign.label("campaign"),
        journey.label("journey"),
        _e.id.label("ord"),
    ).where(
        _e.contact_id.in_(sa.select(converted.c.contact_id)),
        _e.timestamp >= _SINCE,
        _e.timestamp < _END,
        sa.or_(sa.and_(clicked, _human()), tracked),
    )
    both = sa.union_all(pages, from_events).subquery()
    return sa.select(both).order_by(both.c.contact_id, both.c.at, both.c.ord)


def splits(journey_id: str | None = None, step_id: str | None = None) -> sa.Select[Any]:
    """Per split step and path: runs exposed, runs that reached the journey's goal, and runs with a
    human email click from the journey after the split — summed over the days of the journeys' split
    counters (``journey_split_daily``, kept by the engine): a few rows per split and day, whatever the
    number of runs."""
    d = journey_split_daily.c
    query = (
        sa.select(
            d.journey_id,
            d.step_id,
            d.branch,
            sa.func.sum(d.exposures).label("exposures"),
            sa.func.sum(d.goals).label("goals"),
            sa.func.sum(d.clicks).label("clicks"),
        )
        .group_by(d.journey_id, d.step_id, d.branch)
        .order_by(d.journey_id, d.step_id, d.branch)
    )
    if journey_id is not None:
        query = query.where(d.journey_id == journey_id)
    if step_id is not None:
        query = query.where(d.step_id == step_id)
    return query


def splits_from_runs(journey_id: str | None = None, step_id: str | None = None) -> sa.Select[Any]:
    """:func:`splits` computed from the raw runs, steps and events (what the readout read before the
    counters; the tests' and the bench's reference): it grows with the runs."""
    s, r = journey_steps.c, journey_runs.c
    click = (
        sa.select(sa.literal(1))
        .where(
            _e.contact_id == s.contact_id,
            _e.event == EMAIL_CLICKED,
            _e.timestamp >= s.finished_at,
            _e.properties["journey_id"].as_string() == s.journey_id,
            _human(),
        )
        .exists()
    )
    query = (
        sa.select(
            s.journey_id,
            s.step_id,
            s.branch,
            sa.func.count(sa.distinct(s.run_id)).label("exposures"),
            sa.func.count(sa.distinct(sa.case((r.converted_at.is_not(None), s.run_id)))).label("goals"),
            sa.func.count(sa.distinct(sa.case((click, s.run_id)))).label("clicks"),
        )
        .select_from(journey_steps.join(journey_runs, r.id == s.run_id))
        .where(s.type == "split", s.status == "done", s.branch.is_not(None))
        .group_by(s.journey_id, s.step_id, s.branch)
        .order_by(s.journey_id, s.step_id, s.branch)
    )
    if journey_id is not None:
        query = query.where(s.journey_id == journey_id)
    if step_id is not None:
        query = query.where(s.step_id == step_id)
    return query


def journey_entered(journey_id: str, first: date, last: date) -> sa.Select[Any]:
    """The journey's runs entered on the UTC days ``first`` to ``last`` (inclusive) and those of them
    converted since (``entered``, ``converted``): the journey's per-day entry counters
    (``journey_entry_daily``, kept by the engine), one row per day."""
    d = journey_entry_daily.c
    return sa.select(
        sa.func.coalesce(sa.func.sum(d.entered), 0).label("entered"),
        sa.func.coalesce(sa.func.sum(d.converted), 0).label("converted"),
    ).where(d.journey_id == journey_id, d.day >= first, d.day <= last)


def journey_reached(journey_id: str, first: date, last: date) -> sa.Select[Any]:
    """Per step, how many of those runs reached it (``step_id``, ``reached``), in the order the steps were
    first reached (their first step row): the per-day step counters (``journey_reach_daily``)."""
    d = journey_reach_daily.c
    return (
        sa.select(d.step_id, sa.func.sum(d.reached).label("reached"), sa.func.min(d.first_row).label("first"))
        .where(d.journey_id == journey_id, d.day >= first, d.day <= last)
        .group_by(d.step_id)
        .order_by(sa.func.min(d.first_row))
    )


def _runs_entered(journey_id: str, start: datetime, end: datetime) -> Any:
    r = journey_runs.c
    return sa.and_(
        r.journey_id == journey_id,
        r.entered_at >= sa.literal(start, UTCDateTime()),
        r.entered_at < sa.literal(end, UTCDateTime()),
    )


def journey_entered_from_runs(journey_id: str, start: datetime, end: datetime) -> Any:
    """:func:`journey_entered` for the runs entered in ``[start, end)``, computed from the raw runs (the
    funnel's query before the counters): it grows with the runs."""
    r = journey_runs.c
    return sa.select(
        sa.func.count().label("entered"), sa.func.count(r.converted_at).label("converted")
    ).where(_runs_entered(journey_id, start, end))


def journey_reached_from_runs(journey_id: str, start: datetime, end: datetime) -> sa.Select[Any]:
    """:func:`journey_reached` computed from the raw steps of the runs entered in ``[start, end)`` (the
    funnel's query before the counters): distinct runs per step, ordered by its first step row."""
    s, r = journey_steps.c, journey_runs.c
    return (
        sa.select(
            s.step_id,
            sa.func.count(sa.distinct(s.run_id)).label("reached"),
            sa.func.min(s.id).label("first"),
        )
        .where(
            s.journey_id == journey_id,
            s.run_id.in_(sa.select(r.id).where(_runs_entered(journey_id, start, end))),
        )
        .group_by(s.step_id)
        .order_by(sa.func.min(s.id))
    )


_DAY, _AT = date(2026, 1, 1), datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: journey_entered("j1", _DAY, _DAY),
    lambda: journey_reached("j1", _DAY, _DAY),
    lambda: journey_entered_from_runs("j1", _AT, _AT),
    lambda: journey_reached_from_runs("j1", _AT, _AT),
    lambda: conversions("order.completed", None),
    lambda: conversions(None, "customer"),
    lambda: touches("order.completed", None),
    lambda: touches(None, "customer"),
    lambda: touches_from_events("order.completed", None),
    lambda: splits(),
    lambda: splits("j1", "s1"),
    lambda: splits_from_runs(),
    lambda: splits_from_runs("j1", "s1"),
]

__all__ = [
    "SAMPLES",
    "conversions",
    "journey_entered",
    "journey_entered_from_runs",
    "journey_reached",
    "journey_reached_from_runs",
    "splits",
    "splits_from_runs",
    "touches",
    "touches_from_events",
]


# --- alert rules and incidents, scheduled digests (analytics/alerts.py, analytics/digests.py) -------

_r = models.alert_rules
_i = models.alert_incidents
_d = models.report_digests
_s = models.report_digest_sends

ENABLED_RULES = sa.select(_r).where(_r.c.enabled.is_(True)).order_by(_r.c.id)
ALL_RULES = sa.select(_r).order_by(_r.c.name, _r.c.id)
OPEN_INCIDENTS = sa.select(_i).where(_i.c.open_key.is_not(None))
INSERT_RULE = _r.insert()


def rule(rule_id: str) -> sa.Select[Any]:
    return sa.select(_r).where(_r.c.id == rule_id)


def update_rule(rule_id: str, values: dict[str, Any]) -> sa.Update:
    return _r.update().where(_r.c.id == rule_id).values(**values)


def delete_rule(rule_id: str) -> sa.Delete:
    return _r.delete().where(_r.c.id == rule_id)


def open_incidents(dialect: str) -> Any:
    """Open incidents, one per ``open_key``: a key already open (another worker) is skipped; the rows
    actually written are returned."""
    return insert_for(dialect, _i).on_conflict_do_nothing(index_elements=["open_key"]).returning(_i.c.id)


def resolve_incidents(keys: list[str]) -> sa.Update:
    """Close the open incidents of ``keys`` (bind ``at``); only the rows this statement closed return."""
    return (
        _i.update()
        .where(_i.c.open_key.in_(keys), _i.c.resolved_at.is_(None))
        .values(
            open_key=None,
            resolved_at=sa.bindparam("at", type_=UTCDateTime(), required=False),
            resolved_value=sa.case(*_values(keys), else_=None),
        )
        .returning(
            _i.c.id, _i.c.rule_id, _i.c.subject, _i.c.opened_at, _i.c.opened_value, _i.c.resolved_value
        )
    )


def resolve_rule_incidents(rule_id: str) -> sa.Update:
    """Close every open incident of a rule being deleted (bind ``at``; no value: nothing was measured);
    only the rows this statement closed return, so its writer alone notifies."""
    return (
        _i.update()
        .where(_i.c.rule_id == rule_id, _i.c.resolved_at.is_(None))
        .values(open_key=None, resolved_at=sa.bindparam("at", type_=UTCDateTime(), required=False))
        .returning(
            _i.c.id, _i.c.rule_id, _i.c.subject, _i.c.opened_at, _i.c.opened_value, _i.c.resolved_value
        )
    )


def _values(keys: list[str]) -> list[tuple[Any, Any]]:
    return [
        (_i.c.open_key == key, sa.bindparam(f"v{n}", type_=sa.Float, required=False))
        for n, key in enumerate(keys)
    ]


def incidents_page(rule_id: str | None, open_only: bool, limit: int) -> sa.Select[Any]:
    query = sa.select(_i, _r.c.name, _r.c.metric).join(_r, _r.c.id == _i.c.rule_id, isouter=True)
    if rule_id:
        query = query.where(_i.c.rule_id == rule_id)
    if open_only:
        query = query.where(_i.c.resolved_at.is_(None))
    return query.order_by(_i.c.opened_at.desc(), _i.c.id.desc()).limit(limit)


ALL_DIGESTS = sa.select(_d).order_by(_d.c.name, _d.c.id)
INSERT_DIGEST = _d.insert()


def digest(digest_id: str) -> sa.Select[Any]:
    return sa.select(_d).where(_d.c.id == digest_id)


def update_digest(digest_id: str, values: dict[str, Any]) -> sa.Update:
    return _d.update().where(_d.c.id == digest_id).values(**values)


def delete_digest(digest_id: str) -> sa.Delete:
    return _d.delete().where(_d.c.id == digest_id)


def due_digests(limit: int) -> sa.Select[Any]:
    """Enabled digests due at ``now`` (bind), oldest first."""
    now = sa.bindparam("now", type_=UTCDateTime(), required=False)
    return (
        sa.select(_d).where(_d.c.enabled.is_(True), _d.c.next_at <= now).order_by(_d.c.next_at).limit(limit)
    )


def claim_send(dialect: str) -> Any:
    """The (digest, due time) row: written by one worker only; the writer sends that period's digest."""
    insert = insert_for(dialect, _s).on_conflict_do_nothing(index_elements=["digest_id", "due_at"])
    return insert.returning(_s.c.digest_id)


def advance_digest(digest_id: str) -> sa.Update:
    """Move a digest's next due time on from the one just claimed (bind ``due``, ``next``, ``now``)."""
    due = sa.bindparam("due", type_=UTCDateTime(), required=False)
    return (
        _d.update()
        .where(_d.c.id == digest_id, _d.c.next_at == due)
        .values(
            next_at=sa.bindparam("next", type_=UTCDateTime(), required=False),
            updated_at=sa.bindparam("now", type_=UTCDateTime(), required=False),
        )
    )


def digest_sends(digest_id: str, limit: int) -> sa.Select[Any]:
    return sa.select(_s).where(_s.c.digest_id == digest_id).order_by(_s.c.due_at.desc()).limit(limit)


SAMPLES += [
    lambda: [open_incidents(d) for d in ("sqlite", "postgresql")],
    lambda: [claim_send(d) for d in ("sqlite", "postgresql")],
    lambda: rule("r"),
    lambda: update_rule("r", {"name": "n"}),
    lambda: delete_rule("r"),
    lambda: resolve_incidents(["a|", "b|x"]),
    lambda: resolve_rule_incidents("r"),
    lambda: incidents_page("r", True, 10),
    lambda: digest("d"),
    lambda: update_digest("d", {"name": "n"}),
    lambda: delete_digest("d"),
    lambda: due_digests(10),
    lambda: advance_digest("d"),
    lambda: digest_sends("d", 10),
]
