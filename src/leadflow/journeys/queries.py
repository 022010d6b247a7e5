"""Every SQL statement the journeys domain runs, built here; the modules execute them.

The hot path — the executor claiming due steps, a processed batch looking up its contacts' open runs and
waiting steps — reads through partial indexes that hold only the live part of ``journey_runs`` and
``journey_steps``. Where SQLite must match an index's predicate, the statement repeats it word for word
(:data:`~leadflow.journeys.models.OPEN_RUN`, :data:`~leadflow.journeys.models.WAITING_STEP`); see
``tests/integration/journeys/test_query_plans.py``. Functions take the dialect's name where the
statement differs by database (row locks, ``unnest`` for long id lists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Executable

from leadflow.journeys.models import OPEN_RUN, journey_runs, journey_steps, journey_versions, journeys
from leadflow.kernel.db import where_in_dialect

POSTGRESQL = "postgresql"

# ``WAITING_STEP`` (the predicate of ix_journey_steps_waiting), qualified for the join with runs
WAITING = "journey_steps.status IN ('pending', 'held') AND journey_steps.waiting_for IS NOT NULL"

# --- published versions (catalog) ------------------------------------------------------------------

ACTIVE_VERSIONS = sa.select(journeys.c.id, journeys.c.version).where(
    journeys.c.status == "active", journeys.c.version.is_not(None)
)


def versions(wanted: Iterable[tuple[str, int]]) -> sa.Select[Any]:
    """The published versions ``(journey_id, version)`` with their journey's key and name."""
    condition = sa.or_(
        *(sa.and_(journey_versions.c.journey_id == j, journey_versions.c.version == v) for j, v in wanted)
    )
    return (
        sa.select(
            journey_versions.c.journey_id,
            journey_versions.c.version,
            journey_versions.c.definition,
            journeys.c.key,
            journeys.c.name,
        )
        .join(journeys, journeys.c.id == journey_versions.c.journey_id)
        .where(condition)
    )


# --- runs and their steps: enrolment, claiming, cancelling --------------------------------------------


def recent_entries(dialect: str, journey_id: str, since: datetime, contact_ids: Sequence[str]) -> Any:
    """Which of these contacts entered the journey after ``since`` (re-entry ``after``)."""
    query = sa.select(journey_runs.c.contact_id).where(
        journey_runs.c.journey_id == journey_id, journey_runs.c.entered_at > since
    )
    return where_in_dialect(dialect, query, journey_runs.c.contact_id, contact_ids)


def claim_due(dialect: str, now: datetime, limit: int) -> sa.Select[Any]:
    """Up to ``limit`` due pending steps of active journeys, oldest first, through ``ix_journey_steps_due``;
    on PostgreSQL locked, skipping rows another worker holds."""
    query = (
        sa.select(
            journey_steps.c.id,
            journey_steps.c.run_id,
            journey_steps.c.step_id,
            journey_steps.c.attempts,
            journey_steps.c.branch,
            journey_steps.c.detail,
        )
        .where(
            journey_steps.c.status == "pending",
            journey_steps.c.due_at <= now,
            journey_steps.c.journey_id.in_(sa.select(journeys.c.id).where(journeys.c.status == "active")),
        )
        .order_by(journey_steps.c.due_at)
        .limit(limit)
    )
    if dialect == POSTGRESQL:
        query = query.with_for_update(skip_locked=True)
    return query


def claimed_runs(dialect: str, run_ids: Sequence[str]) -> Any:
    """The runs of claimed steps: where each stands and what entered it."""
    query = sa.select(
        journey_runs.c.id,
        journey_runs.c.journey_id,
        journey_runs.c.version,
        journey_runs.c.contact_id,
        journey_runs.c.trigger,
        journey_runs.c.entered_at,
    )
    return where_in_dialect(dialect, query, journey_runs.c.id, run_ids)


def share_active(dialect: str, journey_ids: Iterable[str]) -> sa.Select[Any]:
    """Those of the journeys still active, their rows held shared on PostgreSQL (see ``runs.claim``)."""
    query = sa.select(journeys.c.id).where(
        journeys.c.id.in_(sorted(journey_ids)), journeys.c.status == "active"
    )
    if dialect == POSTGRESQL:
        query = query.with_for_update(read=True)
    return query


def cancel_steps(run_ids: Sequence[str], now: datetime, reason: str) -> sa.Update:
    """The pending (or held) steps of these runs become ``cancelled`` with the reason."""
    return (
        journey_steps.update()
        .where(journey_steps.c.run_id.in_(run_ids), journey_steps.c.status.in_(("pending", "held")))
        .values(status="cancelled", finished_at=now, error=reason)
    )


# --- the processing pipeline (triggers) --------------------------------------------------------------


def open_runs(dialect: str, contact_ids: Sequence[str], now: datetime) -> Any:
    """Active runs of these contacts, and ended ones still inside their conversion window.

    Repeats the predicate of ``ix_journey_runs_open`` word for word, so that only those runs are read,
    never a contact's whole journey history (which grows with every run).
    """
    query = sa.select(
        journey_runs.c.id,
        journey_runs.c.journey_id,
        journey_runs.c.version,
        journey_runs.c.contact_id,
        journey_runs.c.status,
        journey_runs.c.entered_at,
        journey_runs.c.goal_until,
    ).where(
        sa.text(OPEN_RUN),
        sa.or_(journey_runs.c.status == "active", journey_runs.c.goal_until >= now),
    )
    return where_in_dialect(dialect, query, journey_runs.c.contact_id, contact_ids)


def waiting_steps(dialect: str, names: Sequence[str], contact_ids: Sequence[str]) -> Any:
    """Steps of these contacts waiting for one of these events (held ones too), through
    ``ix_journey_steps_waiting`` (whose predicate it repeats): never the contacts' finished steps."""
    query = (
        sa.select(
            journey_steps.c.id,
            journey_steps.c.run_id,
            journey_steps.c.contact_id,
            journey_steps.c.step_id,
            journey_runs.c.journey_id,
            journey_runs.c.version,
        )
        .join(journey_runs, journey_runs.c.id == journey_steps.c.run_id)
        .where(sa.text(WAITING), journey_steps.c.waiting_for.in_(names))
    )
    return where_in_dialect(dialect, query, journey_steps.c.contact_id, contact_ids)


def convert_run(run_id: str, values: dict[str, Any]) -> sa.Update:
    """Convert a run not yet converted (``converted_at`` is set once; its rowcount says if it was)."""
    return (
        journey_runs.update()
        .where(journey_runs.c.id == run_id, journey_runs.c.converted_at.is_(None))
        .values(**values)
    )


def convert_once(run_ids: Sequence[str], at: datetime) -> sa.Update:
    """Set ``converted_at`` on those of these runs not yet converted; answers their ids."""
    return (
        journey_runs.update()
        .where(journey_runs.c.id.in_(list(run_ids)), journey_runs.c.converted_at.is_(None))
        .values(converted_at=at)
        .returning(journey_runs.c.id)
    )


def exit_run(run_id: str, reason: str, now: datetime) -> sa.Update:
    return (
        journey_runs.update()
        .where(journey_runs.c.id == run_id, journey_runs.c.status == "active")
        .values(status="exited", ended_at=now, exit_reason=reason, active_key=None)
    )


def resume_steps(step_ids: Sequence[int], now: datetime) -> sa.Update:
    """Waiting steps whose event arrived become due now, with the outcome ``event``."""
    return (
        journey_steps.update()
        .where(journey_steps.c.id.in_(step_ids), journey_steps.c.status.in_(("pending", "held")))
        .values(due_at=now, branch="event", waiting_for=None)
    )


# --- schedule triggers (scheduling) ------------------------------------------------------------------


def next_fire(journey_id: str) -> sa.Select[Any]:
    return sa.select(journeys.c.next_fire_at).where(journeys.c.id == journey_id)


def set_next_fire(journey_id: str, moment: datetime) -> sa.Update:
    return journeys.update().where(journeys.c.id == journey_id).values(next_fire_at=moment)


# --- journeys: definitions, versions, status (service) ----------------------------------------------


def journey(dialect: str, journey_id: str, *, lock: bool = False) -> sa.Select[Any]:
    """A journey by id or key; with ``lock``, locked for update on PostgreSQL (SQLite's one writer
    holds the whole database)."""
    query = sa.select(journeys).where(sa.or_(journeys.c.id == journey_id, journeys.c.key == journey_id))
    return query.with_for_update() if lock and dialect == POSTGRESQL else query


def journey_with_key(key: str) -> sa.Select[Any]:
    return sa.select(journeys.c.id).where(journeys.c.key == key)


def insert_journey(**values: Any) -> sa.Insert:
    return journeys.insert().values(**values)


def update_journey(journey_id: str, **values: Any) -> sa.Update:
    return journeys.update().where(journeys.c.id == journey_id).values(**values)


def delete_journey(journey_id: str) -> sa.Delete:
    return journeys.delete().where(journeys.c.id == journey_id)


def journeys_page(*, status: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(journeys).order_by(journeys.c.id).limit(limit)
    if status:
        query = query.where(journeys.c.status == status)
    if after:
        query = query.where(journeys.c.id > after)
    return query


def latest_version(journey_id: str) -> sa.Select[Any]:
    return sa.select(sa.func.max(journey_versions.c.version)).where(
        journey_versions.c.journey_id == journey_id
    )


def insert_version(**values: Any) -> sa.Insert:
    return journey_versions.insert().values(**values)


def journey_status(journey_id: str) -> sa.Select[Any]:
    return sa.select(journeys.c.status).where(journeys.c.id == journey_id)


def move_steps(journey_id: str, status: str, now: datetime) -> list[sa.Update]:
    """What a journey's new status does to its steps and runs: pausing holds the pending steps,
    resuming releases them, archiving cancels them and ends the active runs."""
    steps = journey_steps.update().where(journey_steps.c.journey_id == journey_id)
    if status == "paused":
        return [steps.where(journey_steps.c.status == "pending").values(status="held")]
    if status == "active":
        return [steps.where(journey_steps.c.status == "held").values(status="pending")]
    if status == "archived":
        return [
            steps.where(journey_steps.c.status.in_(("pending", "held"))).values(
                status="cancelled", finished_at=now, error="journey archived"
            ),
            journey_runs.update()
            .where(journey_runs.c.journey_id == journey_id, journey_runs.c.status == "active")
            .values(status="exited", ended_at=now, exit_reason="journey archived", active_key=None),
        ]
    return []


# --- runs as read by the API, metrics, GDPR (service) ------------------------------------------------


def runs_page(
    *,
    journey_id: str | None,
    contact_ids: Sequence[str] | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> sa.Select[Any]:
    query = sa.select(journey_runs).order_by(journey_runs.c.id).limit(limit)
    if journey_id is not None:
        query = query.where(journey_runs.c.journey_id == journey_id)
    if contact_ids is not None:
        query = query.where(journey_runs.c.contact_id.in_(list(contact_ids)))
    if status:
        query = query.where(journey_runs.c.status == status)
    if after:
        query = query.where(journey_runs.c.id > after)
    return query


def run(run_id: str) -> sa.Select[Any]:
    return sa.select(journey_runs).where(journey_runs.c.id == run_id)


def steps_of(run_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(journey_steps)
        .where(journey_steps.c.run_id.in_(run_ids))
        .order_by(journey_steps.c.run_id, journey_steps.c.id)
    )


def runs_by_status(journey_id: str) -> sa.Select[Any]:
    return (
        sa.select(journey_runs.c.status, sa.func.count())
        .where(journey_runs.c.journey_id == journey_id)
        .group_by(journey_runs.c.status)
    )


def converted_runs(journey_id: str) -> sa.Select[Any]:
    return sa.select(sa.func.count()).where(
        journey_runs.c.journey_id == journey_id, journey_runs.c.converted_at.is_not(None)
    )


def runs_by_journey(journey_ids: Sequence[str]) -> sa.Select[Any]:
    """Runs per journey and status, for a list of journeys (uses ix_journey_runs_journey_id_status)."""
    return (
        sa.select(journey_runs.c.journey_id, journey_runs.c.status, sa.func.count())
        .where(journey_runs.c.journey_id.in_(list(journey_ids)))
        .group_by(journey_runs.c.journey_id, journey_runs.c.status)
    )


def version_list(journey_id: str) -> sa.Select[Any]:
    v = journey_versions.c
    return (
        sa.select(v.version, v.published_at, v.published_by)
        .where(v.journey_id == journey_id)
        .order_by(v.version.desc())
    )


def version_of(journey_id: str, version: int) -> sa.Select[Any]:
    return sa.select(journey_versions).where(
        journey_versions.c.journey_id == journey_id, journey_versions.c.version == version
    )


def step_metrics(journey_id: str) -> sa.Select[Any]:
    """Per step: its type, how many runs reached it, completed it, wait at it, failed at it, and of
    those that passed it how many converted."""
    s, r = journey_steps, journey_runs

    def count(condition: Any) -> Any:
        return sa.func.count(sa.distinct(sa.case((condition, s.c.run_id))))

    return (
        sa.select(
            s.c.step_id,
            sa.func.min(s.c.type),
            sa.func.count(sa.distinct(s.c.run_id)),
            count(s.c.status == "done"),
            count(s.c.status.in_(("pending", "held"))),
            count(s.c.status == "failed"),
            count(r.c.converted_at.is_not(None)),
        )
        .join(r, r.c.id == s.c.run_id)
        .where(s.c.journey_id == journey_id)
        .group_by(s.c.step_id)
        .order_by(s.c.step_id)
    )


def erase(contact_ids: Sequence[str], now: datetime, reason: str) -> list[sa.Update]:
    """GDPR erasure, in order: the people's steps lose details and errors, their waiting steps are
    cancelled, their runs lose the entering event, errors and goal window, their active runs end."""
    ids = list(contact_ids)
    r, s = journey_runs.c, journey_steps.c
    theirs = s.run_id.in_(sa.select(r.id).where(r.contact_id.in_(ids)))  # both by index
    redacted: dict[str, Any] = {"trigger": {}, "error": None, "goal_until": None}
    return [
        journey_steps.update().where(theirs).values(detail=None, error=None),
        journey_steps.update()
        .where(theirs, s.status.in_(("pending", "held")))
        .values(status="cancelled", finished_at=now, error=reason),
        journey_runs.update().where(r.contact_id.in_(ids)).values(**redacted),
        journey_runs.update()
        .where(r.contact_id.in_(ids), r.status == "active")
        .values(status="exited", ended_at=now, exit_reason=reason, active_key=None),
    ]


def runs_of_contacts(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(journey_runs)
        .where(journey_runs.c.contact_id.in_(list(contact_ids)))
        .order_by(journey_runs.c.id)
    )


# --- the simulator's scratch database ----------------------------------------------------------------

NEXT_DUE_STEP = sa.select(sa.func.min(journey_steps.c.due_at)).where(journey_steps.c.status == "pending")
ALL_STEPS = sa.select(journey_steps).order_by(journey_steps.c.id)
RUN_OUTCOME = sa.select(journey_runs.c.status, journey_runs.c.exit_reason)


# --- every statement-building function, for the compile test ------------------------------------------

_AT = datetime(2026, 1, 1, tzinfo=UTC)
_IDS = ["01JCONTACT0000000000000001", "01JCONTACT0000000000000002"]

SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: versions([("j1", 1), ("j2", 3)]),
    lambda: [recent_entries(d, "j1", _AT - timedelta(days=7), _IDS) for d in ("sqlite", POSTGRESQL)],
    lambda: [claim_due(d, _AT, 100) for d in ("sqlite", POSTGRESQL)],
    lambda: [claimed_runs(d, _IDS) for d in ("sqlite", POSTGRESQL)],
    lambda: [share_active(d, {"j1", "j2"}) for d in ("sqlite", POSTGRESQL)],
    lambda: cancel_steps(_IDS, _AT, "run ended"),
    lambda: [open_runs(d, _IDS, _AT) for d in ("sqlite", POSTGRESQL)],
    lambda: [waiting_steps(d, ["Order Completed"], _IDS) for d in ("sqlite", POSTGRESQL)],
    lambda: convert_run("r1", {"converted_at": _AT, "status": "converted"}),
    lambda: convert_once(["r1", "r2"], _AT),
    lambda: exit_run("r1", "exit: Unsubscribed", _AT),
    lambda: resume_steps([1, 2], _AT),
    lambda: [next_fire("j1"), set_next_fire("j1", _AT)],
    lambda: [journey(d, "j1", lock=True) for d in ("sqlite", POSTGRESQL)] + [journey_with_key("welcome")],
    lambda: insert_journey(
        id="j1", name="Welcome", status="draft", definition={}, created_at=_AT, updated_at=_AT
    ),
    lambda: [update_journey("j1", status="paused", updated_at=_AT), delete_journey("j1")],
    lambda: [
        journeys_page(status="active", after="j0", limit=50),
        journeys_page(status=None, after=None, limit=5),
    ],
    lambda: [latest_version("j1"), journey_status("j1")],
    lambda: insert_version(journey_id="j1", version=1, definition={}, published_at=_AT, published_by="me"),
    lambda: [
        *move_steps("j1", "paused", _AT),
        *move_steps("j1", "active", _AT),
        *move_steps("j1", "archived", _AT),
    ],
    lambda: runs_page(journey_id="j1", contact_ids=_IDS, status="active", after="r0", limit=50),
    lambda: [run("r1"), steps_of(["r1", "r2"]), runs_of_contacts(_IDS)],
    lambda: [runs_by_status("j1"), converted_runs("j1"), step_metrics("j1")],
    lambda: [runs_by_journey(["j1", "j2"]), version_list("j1"), version_of("j1", 2)],
    lambda: erase(_IDS, _AT, "contact erased"),
]
