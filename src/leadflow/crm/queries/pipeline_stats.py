"""Pipeline stats (leadflow.crm.deal_stats) from the per-day counters (leadflow.crm.stage_counters).

- :func:`flow_days` and :func:`deal_days` sum the counter rows of a range of whole UTC days per stage
  (a few rows per stage and day, whatever the number of deals);
- :func:`deal_rows` / :func:`deal_visits` read what some deals add to the counters (before and after a
  change, in its transaction); :func:`upsert_flow` / :func:`upsert_deals` add a change's differences;
- :func:`fill_flow` / :func:`fill_deals` (after :func:`clear_flow` / :func:`clear_deals`) recompute the
  counters from the deals and their stage visits, set-based (the rebuild, and migration 0020's backfill).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import crm_deal_stages, crm_deals, crm_stage_days, crm_stage_deal_days, crm_stages
from leadflow.kernel.db import Sample, insert_for

_s, _d, _v = crm_stages.c, crm_deals.c, crm_deal_stages.c
_f, _t = crm_stage_days.c, crm_stage_deal_days.c
FLOW_COUNTS = ("reached", "onward", "visits", "open_visits", "closed_seconds", "open_entered")


def deal_rows(deal_ids: Sequence[str], *, lock: bool) -> sa.Select[Any]:
    """The deals' rows (``lock``: locked in id order on PostgreSQL, so the visits read next are the
    deals' latest)."""
    found = (
        sa.select(_d.id, _d.pipeline_id, _d.stage_id, _d.created_at, _d.currency, _d.value)
        .where(_d.id.in_(list(deal_ids)))
        .order_by(_d.id)
    )
    return found.with_for_update(of=crm_deals) if lock else found


def deal_visits(deal_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(_v.deal_id, _v.stage_id, _v.entered_at, _v.left_at).where(_v.deal_id.in_(list(deal_ids)))


def _range(table: sa.Table, pipeline_id: str | None, first: date | None, end: date | None) -> list[Any]:
    found = [table.c.day >= first if first else None, table.c.day < end if end else None]
    found.append(table.c.pipeline_id == pipeline_id if pipeline_id else None)
    return [c for c in found if c is not None]


def flow_days(pipeline_id: str | None, first: date | None, end: date | None) -> sa.Select[Any]:
    """Per stage: the flow counters of the days in ``[first, end)``."""
    return (
        sa.select(_f.stage_id, *(sa.func.sum(_f[name]).label(name) for name in FLOW_COUNTS))
        .where(*_range(crm_stage_days, pipeline_id, first, end))
        .group_by(_f.stage_id)
    )


def deal_days(pipeline_id: str | None, first: date | None, end: date | None) -> sa.Select[Any]:
    """Per stage and currency: the deals created on the days in ``[first, end)`` that are in it now."""
    return (
        sa.select(
            _t.stage_id,
            _t.currency,
            sa.func.sum(_t.deals).label("deals"),
            sa.func.sum(_t.total).label("total"),
        )
        .where(*_range(crm_stage_deal_days, pipeline_id, first, end))
        .group_by(_t.stage_id, _t.currency)
    )


def _upsert(dialect: str, table: sa.Table, keys: list[str], counts: list[str]) -> Any:
    statement = insert_for(dialect, table)
    return statement.on_conflict_do_update(
        index_elements=keys, set_={name: table.c[name] + statement.excluded[name] for name in counts}
    )


def upsert_flow(dialect: str) -> Any:
    """Add differences (executemany: ``stage_id``, ``day``, ``pipeline_id`` and each of FLOW_COUNTS)."""
    return _upsert(dialect, crm_stage_days, ["stage_id", "day"], list(FLOW_COUNTS))


def upsert_deals(dialect: str) -> Any:
    """Add differences (executemany: ``stage_id``, ``day``, ``currency``, ``pipeline_id``, ``deals``,
    ``total``)."""
    return _upsert(dialect, crm_stage_deal_days, ["stage_id", "day", "currency"], ["deals", "total"])


# ---- the rebuild ---------------------------------------------------------------------------------------


def _day(dialect: str, at: Any) -> Any:
    """The UTC day of an instant."""
    if dialect == "sqlite":
        return sa.func.date(at)
    return sa.cast(sa.func.timezone("UTC", at), sa.Date)


def _seconds(dialect: str, start: Any, end: Any) -> Any:
    if dialect == "sqlite":
        return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0
    return sa.cast(sa.extract("epoch", end - start), sa.Float)


def _epoch(dialect: str, at: Any) -> Any:
    if dialect == "sqlite":
        return (sa.func.julianday(at) - 2440587.5) * 86400.0
    return sa.cast(sa.extract("epoch", at), sa.Float)


def _of_pipeline(stage_id: Any, pipeline_id: str | None) -> list[Any]:
    if pipeline_id is None:
        return []
    return [stage_id.in_(sa.select(_s.id).where(_s.pipeline_id == pipeline_id).scalar_subquery())]


def clear_flow(pipeline_id: str | None) -> sa.Delete:
    found = crm_stage_days.delete()
    return found if pipeline_id is None else found.where(_f.pipeline_id == pipeline_id)


def clear_deals(pipeline_id: str | None) -> sa.Delete:
    found = crm_stage_deal_days.delete()
    return found if pipeline_id is None else found.where(_t.pipeline_id == pipeline_id)


def fill_flow(dialect: str, pipeline_id: str | None) -> sa.Insert:
    """The flow counters from the stage visits: every visit counts on its entry day; every deal's first
    entry into a stage counts ``reached`` on that day, and ``onward`` when the deal has been in the stage
    that follows it (position + 1 in its pipeline) at any time."""
    open_ = _v.left_at.is_(None)
    zero, none = sa.literal(0, sa.BigInteger), sa.literal(0.0, sa.Float)
    visits = sa.select(
        _v.stage_id.label("stage_id"),
        _day(dialect, _v.entered_at).label("day"),
        zero.label("reached"),
        zero.label("onward"),
        sa.literal(1, sa.BigInteger).label("visits"),
        sa.case((open_, 1), else_=0).label("open_visits"),
        sa.case((open_, none), else_=_seconds(dialect, _v.entered_at, _v.left_at)).label("closed_seconds"),
        sa.case((open_, _epoch(dialect, _v.entered_at)), else_=none).label("open_entered"),
    ).where(*_of_pipeline(_v.stage_id, pipeline_id))
    firsts = (
        sa.select(_v.deal_id, _v.stage_id, sa.func.min(_v.entered_at).label("first_at"))
        .where(*_of_pipeline(_v.stage_id, pipeline_id))
        .group_by(_v.deal_id, _v.stage_id)
        .cte("firsts")
    )
    here, after, later = crm_stages.alias("here"), crm_stages.alias("nxt"), crm_deal_stages.alias("later")
    went_on = sa.exists().where(
        here.c.id == firsts.c.stage_id,
        after.c.pipeline_id == here.c.pipeline_id,
        after.c.position == here.c.position + 1,
        later.c.stage_id == after.c.id,
        later.c.deal_id == firsts.c.deal_id,
    )
    entries = sa.select(
        firsts.c.stage_id,
        _day(dialect, firsts.c.first_at),
        sa.literal(1, sa.BigInteger),
        sa.case((went_on, 1), else_=0),
        zero,
        zero,
        none,
        none,
    )
    parts = sa.union_all(visits, entries).subquery("parts")
    summed = (
        sa.select(
            parts.c.stage_id,
            parts.c.day,
            _s.pipeline_id,
            *(sa.func.sum(parts.c[name]) for name in FLOW_COUNTS),
        )
        .join(crm_stages, _s.id == parts.c.stage_id)
        .group_by(parts.c.stage_id, parts.c.day, _s.pipeline_id)
    )
    return crm_stage_days.insert().from_select(["stage_id", "day", "pipeline_id", *FLOW_COUNTS], summed)


def fill_deals(dialect: str, pipeline_id: str | None) -> sa.Insert:
    """The deal counters from the deals: each counts in its stage on its day of creation."""
    day = _day(dialect, _d.created_at)
    summed = sa.select(
        _d.stage_id, day, _d.currency, _d.pipeline_id, sa.func.count(), sa.func.sum(_d.value)
    ).group_by(_d.stage_id, day, _d.currency, _d.pipeline_id)
    if pipeline_id is not None:
        summed = summed.where(_d.pipeline_id == pipeline_id)
    columns = ["stage_id", "day", "currency", "pipeline_id", "deals", "total"]
    return crm_stage_deal_days.insert().from_select(columns, summed)


_DAY = date(2026, 1, 1)
_DIALECTS = ("sqlite", "postgresql")

SAMPLES: list[Sample] = [
    lambda: [deal_rows(["d1", "d2"], lock=lock) for lock in (True, False)] + [deal_visits(["d1"])],
    lambda: [flow_days(p, f, e) for p in ("p", None) for f, e in ((_DAY, _DAY), (None, None))],
    lambda: [deal_days(p, f, e) for p in ("p", None) for f, e in ((_DAY, _DAY), (None, None))],
    lambda: [clear_flow(p) for p in ("p", None)] + [clear_deals(p) for p in ("p", None)],
    lambda: [fill_flow(d, p) for d in _DIALECTS for p in ("p", None)],
    lambda: [fill_deals(d, p) for d in _DIALECTS for p in ("p", None)],
    lambda: [upsert_flow(d) for d in _DIALECTS] + [upsert_deals(d) for d in _DIALECTS],
]
