"""Set-based reads for attribution and A/B readouts (issue 15): one statement for the conversions of
a period, one for their touchpoints, one for every split's exposures and conversions.

Touchpoints are read from three places: the page views with UTM or an external referrer
(``touchpoints``), the contact's own ``track`` events that carry a source (``context.campaign`` —
forms and capture flows put the campaign there — or ``lead.captured``'s ``source``/``utm``), and
human email clicks (``leadflow.email_clicked``: source and medium ``email``, the journey or broadcast
as campaign, the journey for ``by=journey``).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadflow.contacts.service import touchpoints
from leadflow.events.service import event_log
from leadflow.journeys.service import journey_runs, journey_steps
from leadflow.kernel.db import Sample
from leadflow.kernel.types import UTCDateTime

_e = event_log.c
_t = touchpoints.c
STAGE_CHANGED = "leadflow.stage_changed"
EMAIL_CLICKED = "leadflow.email_clicked"
LEAD_CAPTURED = "lead.captured"

_START = sa.bindparam("start", type_=UTCDateTime())
_END = sa.bindparam("end", type_=UTCDateTime())
_SINCE = sa.bindparam("since", type_=UTCDateTime())


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


def touches(event: str | None, stage: str | None) -> sa.Select[Any]:
    """The touchpoints of the contacts with a conversion in the period, from ``:since`` (the start
    less the lookback) to ``:end``, in the conversions' contact order; each conversion keeps its own
    window in Python. Columns: contact_id, at, source, medium, campaign, journey, ord."""
    converted = (
        conversions(event, stage).with_only_columns(_e.contact_id).order_by(None).distinct().subquery()
    )
    pages = sa.select(
        _t.contact_id,
        _t.occurred_at.label("at"),
        _t.source,
        _t.medium,
        _t.campaign,
        sa.cast(sa.null(), sa.String).label("journey"),
        _t.event_id.label("ord"),
    ).where(
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
    human email click from the journey after the split."""
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


SAMPLES: list[Sample] = [
    lambda: conversions("order.completed", None),
    lambda: conversions(None, "customer"),
    lambda: touches("order.completed", None),
    lambda: touches(None, "customer"),
    lambda: splits(),
    lambda: splits("j1", "s1"),
]

__all__ = ["SAMPLES", "conversions", "splits", "touches"]
