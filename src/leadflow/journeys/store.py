"""The statements of the journeys' per-day counters.

* The split counters (``journey_split_daily``, see ``journeys/splits.py``): adding counts, the exposures
  of converted runs, marking the exposures a click counts for, and the from-scratch recomputation. An
  *exposure* is a split step's row that is ``done`` with a path (``branch``): :data:`EXPOSURE`.
* The funnel counters (``journey_entry_daily``, ``journey_reach_daily``, see ``journeys/funnels.py``):
  adding counts, the entry of converted runs, the steps reached by runs, and the recomputation.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.events.service import event_log
from leadflow.journeys.models import (
    journey_entry_daily,
    journey_reach_daily,
    journey_runs,
    journey_split_daily,
    journey_steps,
)
from leadflow.kernel.db import Sample, insert_for, where_in_dialect
from leadflow.kernel.types import UTCDateTime

EMAIL_CLICKED = "leadflow.email_clicked"
COUNTS = ("exposures", "goals", "clicks")
KEY = ("journey_id", "step_id", "branch", "day")

_s, _r, _d, _e = journey_steps.c, journey_runs.c, journey_split_daily.c, event_log.c
EXPOSURE = sa.and_(_s.type == "split", _s.status == "done", _s.branch.is_not(None))


def add_counts(dialect: str) -> Any:
    """Add rows of counts (``journey_id, step_id, branch, day, exposures, goals, clicks``, an
    executemany) to the counters: a new key is inserted, an existing one incremented."""
    insert = insert_for(dialect, journey_split_daily)
    return insert.on_conflict_do_update(
        index_elements=list(KEY), set_={name: _d[name] + insert.excluded[name] for name in COUNTS}
    )


def exposures_of(dialect: str, run_ids: Sequence[str]) -> Any:
    """The exposures of these runs (those that just converted): key columns and the exposure's time."""
    query = sa.select(_s.journey_id, _s.step_id, _s.branch, _s.finished_at).where(EXPOSURE)
    return where_in_dialect(dialect, query, _s.run_id, run_ids)


def mark_clicked(dialect: str, clicks: Sequence[tuple[str, str, datetime]]) -> Any:
    """``(contact, journey, click time)`` → set ``clicked_at`` (bind ``now``) on the exposures of that
    contact in that journey finished at or before the click and not yet clicked; answers the rows it
    marked (their key and exposure time). The runs are found by contact (``ix_journey_runs_contact_id``),
    their steps by run (``ix_journey_steps_run_id``)."""
    contacts = sorted({contact for contact, _, _ in clicks})
    runs = where_in_dialect(dialect, sa.select(_r.id), _r.contact_id, contacts)
    matches = [
        sa.and_(
            _s.contact_id == contact,
            _s.journey_id == journey,
            _s.finished_at <= sa.literal(at, UTCDateTime()),
        )
        for contact, journey, at in clicks
    ]
    return (
        journey_steps.update()
        .where(_s.run_id.in_(runs.scalar_subquery()), EXPOSURE, _s.clicked_at.is_(None), sa.or_(*matches))
        .values(clicked_at=sa.bindparam("now", type_=UTCDateTime(), required=False))
        .returning(_s.journey_id, _s.step_id, _s.branch, _s.finished_at)
    )


def clicks_since(dialect: str, contact_ids: Sequence[str]) -> Any:
    """These contacts' email clicks stamped at or after ``since`` (bind): at a split, the clicks already
    processed that count for its exposures (by ``ix_events_contact_id_timestamp``; nearly always none)."""
    query = sa.select(_e.contact_id, _e.properties, _e.timestamp).where(
        _e.event == EMAIL_CLICKED, _e.timestamp >= sa.bindparam("since", type_=UTCDateTime(), required=False)
    )
    return where_in_dialect(dialect, query, _e.contact_id, contact_ids)


def _day(dialect: str, column: Any) -> Any:
    if dialect == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def _human() -> Any:
    """A click by a person (a scanner's carries ``machine_generated: true``)."""
    return sa.func.coalesce(_e.properties["machine_generated"].as_boolean(), sa.false()) == sa.false()


def first_click() -> Any:
    """The first human email click of the exposure's contact from its journey at or after it."""
    return (
        sa.select(sa.func.min(_e.timestamp))
        .where(
            _e.contact_id == _s.contact_id,
            _e.event == EMAIL_CLICKED,
            _e.timestamp >= _s.finished_at,
            _e.properties["journey_id"].as_string() == _s.journey_id,
            _human(),
        )
        .scalar_subquery()
    )


# The recomputation (``splits.rebuild``): every exposure's click from the events, then the counters.
RECOMPUTE_CLICKS = journey_steps.update().where(EXPOSURE).values(clicked_at=first_click())
CLEAR = journey_split_daily.delete()
LOCK = sa.text("LOCK TABLE journey_split_daily IN EXCLUSIVE MODE")


def recount(dialect: str) -> Any:
    """Insert every counter from the exposures and their runs (the counters cleared first)."""
    day = _day(dialect, _s.finished_at)
    select = (
        sa.select(
            _s.journey_id,
            _s.step_id,
            _s.branch,
            day,
            sa.func.count(),
            sa.func.count(_r.converted_at),
            sa.func.count(_s.clicked_at),
        )
        .select_from(journey_steps.join(journey_runs, _r.id == _s.run_id))
        .where(EXPOSURE)
        .group_by(_s.journey_id, _s.step_id, _s.branch, day)
    )
    return journey_split_daily.insert().from_select([*KEY, *COUNTS], select)


ALL = sa.select(journey_split_daily).order_by(*[_d[name] for name in KEY])
COUNT = sa.select(sa.func.count()).select_from(journey_split_daily)


# --- the funnel counters (``journeys/funnels.py``) ---------------------------------------------------

ENTRY_KEY, ENTRY_COUNTS = ("journey_id", "day"), ("entered", "converted")
REACH_KEY = ("journey_id", "day", "step_id")
_ed, _rd = journey_entry_daily.c, journey_reach_daily.c


def add_entries(dialect: str) -> Any:
    """Add rows of counts (``journey_id, day, entered, converted``, an executemany) to the entry
    counters: a new key is inserted, an existing one incremented."""
    insert = insert_for(dialect, journey_entry_daily)
    return insert.on_conflict_do_update(
        index_elements=list(ENTRY_KEY),
        set_={name: _ed[name] + insert.excluded[name] for name in ENTRY_COUNTS},
    )


def add_reached(dialect: str) -> Any:
    """Add rows (``journey_id, day, step_id, reached, first_row``, an executemany) to the step counters:
    ``reached`` incremented, ``first_row`` the smaller of the two."""
    insert = insert_for(dialect, journey_reach_daily)
    smaller = sa.func.least if dialect == "postgresql" else sa.func.min  # SQLite's min(a, b) is scalar
    return insert.on_conflict_do_update(
        index_elements=list(REACH_KEY),
        set_={
            "reached": _rd.reached + insert.excluded.reached,
            "first_row": smaller(_rd.first_row, insert.excluded.first_row),
        },
    )


def entries_of(dialect: str, run_ids: Sequence[str]) -> Any:
    """The journey and entry time of these runs (by primary key)."""
    return where_in_dialect(dialect, sa.select(_r.journey_id, _r.entered_at), _r.id, run_ids)


def _steps_of_runs() -> Any:
    """Step rows with their run (of the same journey, as the funnel always matched them)."""
    return journey_steps.join(journey_runs, sa.and_(_r.id == _s.run_id, _r.journey_id == _s.journey_id))


def reach_of(dialect: str, run_ids: Sequence[str]) -> Any:
    """Per run of these and step: the run's journey and entry time, its first row for the step and how
    many rows it has for it (by ``ix_journey_steps_run_id``)."""
    query = (
        sa.select(
            _s.run_id,
            _s.step_id,
            _r.journey_id,
            _r.entered_at,
            sa.func.min(_s.id).label("first_row"),
            sa.func.count().label("rows"),
        )
        .select_from(_steps_of_runs())
        .group_by(_s.run_id, _s.step_id, _r.journey_id, _r.entered_at)
    )
    return where_in_dialect(dialect, query, _s.run_id, run_ids)


# The recomputation (``funnels.rebuild``): the counters cleared, then counted from the runs and steps.
CLEAR_FUNNEL = (journey_entry_daily.delete(), journey_reach_daily.delete())
LOCK_FUNNEL = sa.text("LOCK TABLE journey_entry_daily, journey_reach_daily IN EXCLUSIVE MODE")


def recount_entries(dialect: str) -> Any:
    """Insert every entry counter from the runs (per journey and UTC day of entry)."""
    day = _day(dialect, _r.entered_at)
    select = sa.select(_r.journey_id, day, sa.func.count(), sa.func.count(_r.converted_at)).group_by(
        _r.journey_id, day
    )
    return journey_entry_daily.insert().from_select([*ENTRY_KEY, *ENTRY_COUNTS], select)


def recount_reached(dialect: str) -> Any:
    """Insert every step counter from the steps and their runs (distinct runs, the first row)."""
    day = _day(dialect, _r.entered_at)
    select = (
        sa.select(_r.journey_id, day, _s.step_id, sa.func.count(sa.distinct(_s.run_id)), sa.func.min(_s.id))
        .select_from(_steps_of_runs())
        .group_by(_r.journey_id, day, _s.step_id)
    )
    return journey_reach_daily.insert().from_select([*REACH_KEY, "reached", "first_row"], select)


ALL_ENTRIES = sa.select(journey_entry_daily).order_by(*[_ed[name] for name in ENTRY_KEY])
ALL_REACHED = sa.select(journey_reach_daily).order_by(*[_rd[name] for name in REACH_KEY])

_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: [add_counts(d) for d in ("sqlite", "postgresql")],
    lambda: [exposures_of(d, ["r1", "r2"]) for d in ("sqlite", "postgresql")],
    lambda: [mark_clicked(d, [("c1", "j1", _AT), ("c2", "j1", _AT)]) for d in ("sqlite", "postgresql")],
    lambda: [recount(d) for d in ("sqlite", "postgresql")],
    lambda: [clicks_since(d, ["c1", "c2"]) for d in ("sqlite", "postgresql")],
    lambda: RECOMPUTE_CLICKS,
    lambda: [CLEAR, ALL, COUNT, LOCK],
    lambda: [add_entries(d) for d in ("sqlite", "postgresql")],
    lambda: [add_reached(d) for d in ("sqlite", "postgresql")],
    lambda: [entries_of(d, ["r1", "r2"]) for d in ("sqlite", "postgresql")],
    lambda: [reach_of(d, ["r1", "r2"]) for d in ("sqlite", "postgresql")],
    lambda: [recount_entries(d) for d in ("sqlite", "postgresql")],
    lambda: [recount_reached(d) for d in ("sqlite", "postgresql")],
    lambda: [*CLEAR_FUNNEL, LOCK_FUNNEL, ALL_ENTRIES, ALL_REACHED],
]
