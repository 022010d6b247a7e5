"""The statements of the per-day split counters (``journey_split_daily``, see ``journeys/splits.py``):
adding counts, the exposures of converted runs, marking the exposures a click counts for, and the
from-scratch recomputation. An *exposure* is a split step's row that is ``done`` with a path
(``branch``): :data:`EXPOSURE`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.events.service import event_log
from leadflow.journeys.models import journey_runs, journey_split_daily, journey_steps
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

_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: [add_counts(d) for d in ("sqlite", "postgresql")],
    lambda: [exposures_of(d, ["r1", "r2"]) for d in ("sqlite", "postgresql")],
    lambda: [mark_clicked(d, [("c1", "j1", _AT), ("c2", "j1", _AT)]) for d in ("sqlite", "postgresql")],
    lambda: [recount(d) for d in ("sqlite", "postgresql")],
    lambda: [clicks_since(d, ["c1", "c2"]) for d in ("sqlite", "postgresql")],
    lambda: RECOMPUTE_CLICKS,
    lambda: [CLEAR, ALL, COUNT, LOCK],
]
