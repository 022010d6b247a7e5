"""Tables owned by the journeys domain. Other domains use :mod:`leadflow.journeys.service`.

``journey_runs`` and ``journey_steps`` grow with every enrolment, so like the event log they carry no
foreign keys to contacts (see docs/architecture.md, "references"): merges and erasures reach them
through the bus.
"""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, bigint_pk, json_type

journeys = sa.Table(
    "journeys",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(100), unique=True),  # set for journeys installed from a template
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),  # draft | active | paused | archived
    sa.Column("definition", json_type(), nullable=False),  # the working copy (edited, not yet published)
    sa.Column("version", sa.Integer),  # the published version new contacts enter
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),  # bumped on every change
    sa.Column("next_fire_at", UTCDateTime()),  # schedule triggers: the next cron tick
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime()),
    sa.Index("ix_journeys_status", "status"),
)

journey_versions = sa.Table(
    "journey_versions",
    metadata,
    sa.Column("journey_id", sa.String(ID_LENGTH), sa.ForeignKey("journeys.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("definition", json_type(), nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=False),
    sa.Column("published_by", sa.String(64), nullable=False),
)

# Partial-index predicates, repeated word for word by the queries that must use them (SQLite matches
# an index's WHERE terms textually; PostgreSQL proves them, also for generic plans).
OPEN_RUN = "converted_at IS NULL AND (status = 'active' OR goal_until IS NOT NULL)"
WAITING_STEP = "status IN ('pending', 'held') AND waiting_for IS NOT NULL"

journey_runs = sa.Table(
    "journey_runs",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("journey_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH), nullable=False),
    # active | completed | exited | converted | failed
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("entry_key", sa.String(200), nullable=False),  # the trigger occurrence: enrols once
    sa.Column("active_key", sa.String(ID_LENGTH)),  # the contact while active (one active run each)
    sa.Column("step_id", sa.String(64)),  # where the contact is now
    sa.Column("variant", sa.String(64)),  # the split path taken, for A/B results
    sa.Column("trigger", json_type(), nullable=False),  # the entering event: name, properties
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("ended_at", UTCDateTime()),
    sa.Column("exit_reason", sa.String(64)),
    sa.Column("goal_until", UTCDateTime()),  # a conversion counts until then
    sa.Column("converted_at", UTCDateTime()),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("journey_id", "contact_id", "entry_key"),
    sa.UniqueConstraint("journey_id", "active_key"),
    sa.Index("ix_journey_runs_contact_id", "contact_id"),
    sa.Index("ix_journey_runs_journey_id_status", "journey_id", "status"),
    # The runs an event can still end or convert (see ``queries.open_runs``): without it, every
    # processed batch read each contact's whole journey history.
    sa.Index(
        "ix_journey_runs_open",
        "contact_id",
        postgresql_where=sa.text(OPEN_RUN),
        sqlite_where=sa.text(OPEN_RUN),
    ),
)

# One row per step a run takes: the work queue (status pending, due_at) and the run's history.
journey_steps = sa.Table(
    "journey_steps",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("journey_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("step_id", sa.String(64), nullable=False),
    sa.Column("type", sa.String(24), nullable=False),
    # pending | held (journey paused) | done | failed | cancelled
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("waiting_for", sa.String(255)),  # wait_until / goal: the event that resumes the step
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("branch", sa.String(64)),  # the outcome: then / else / event / timeout / a split path
    sa.Column("detail", json_type()),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    # A split row (an exposure): when a human email click from the journey after the split was first
    # counted for it (see ``journeys/splits.py``), so each exposure's click counts once.
    sa.Column("clicked_at", UTCDateTime()),
    sa.Index(
        "ix_journey_steps_due",
        "due_at",
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    ),
    sa.Index(
        "ix_journey_steps_waiting",
        "contact_id",
        "waiting_for",
        postgresql_where=sa.text(WAITING_STEP),
        sqlite_where=sa.text(WAITING_STEP),
    ),
    sa.Index("ix_journey_steps_run_id", "run_id"),
    sa.Index("ix_journey_steps_journey_id_step_id", "journey_id", "step_id"),
)

# Per split step, path and UTC day of exposure: runs exposed, those that reached the journey's goal and
# those with a human email click from the journey after the split — kept by the engine in the
# transactions that expose, convert and click (``journeys/splits.py``), read by the A/B readouts.
journey_split_daily = sa.Table(
    "journey_split_daily",
    metadata,
    sa.Column("journey_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("step_id", sa.String(64), primary_key=True),
    sa.Column("branch", sa.String(64), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("exposures", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("goals", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("clicks", sa.BigInteger, nullable=False, server_default="0"),
)

# The journey funnel's per-day counters (``journeys/funnels.py``), kept by the engine in the transactions
# that start runs, convert them and insert step rows, read by the journey funnel (analytics). Per journey
# and UTC day of entry: runs entered that day and those of them that converted (whenever they did) ...
journey_entry_daily = sa.Table(
    "journey_entry_daily",
    metadata,
    sa.Column("journey_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("entered", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("converted", sa.BigInteger, nullable=False, server_default="0"),
)
# ... and per step: runs entered that day that reached it (have a step row for it, counted once per run),
# and the id of the first such step row (the funnel lists steps in the order they were first reached).
journey_reach_daily = sa.Table(
    "journey_reach_daily",
    metadata,
    sa.Column("journey_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("step_id", sa.String(64), primary_key=True),
    sa.Column("reached", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("first_row", sa.BigInteger, nullable=False),
)
