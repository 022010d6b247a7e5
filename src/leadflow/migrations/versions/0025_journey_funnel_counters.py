"""journeys: the journey funnel's per-day counters (``journey_entry_daily``: runs entered and converted
per journey and UTC day of entry; ``journey_reach_daily``: per step, the runs of that day that reached it
and its first step row), backfilled from the runs and steps

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# The backfill, as leadflow.journeys.funnels.rebuild does it today (frozen here): per journey and the
# runs' UTC day of entry, the runs and those converted; per step, the distinct runs with a row for it
# (a step row with its run, of the same journey) and the smallest such row id.
_ENTRIES = """
INSERT INTO journey_entry_daily (journey_id, day, entered, converted)
SELECT r.journey_id, {day}, count(*), count(r.converted_at)
FROM journey_runs r
GROUP BY r.journey_id, {day}
"""
_REACHED = """
INSERT INTO journey_reach_daily (journey_id, day, step_id, reached, first_row)
SELECT r.journey_id, {day}, s.step_id, count(DISTINCT s.run_id), min(s.id)
FROM journey_steps s JOIN journey_runs r ON r.id = s.run_id AND r.journey_id = s.journey_id
GROUP BY r.journey_id, {day}, s.step_id
"""
_DAY = {"postgresql": "CAST(timezone('UTC', r.entered_at) AS DATE)", "sqlite": "date(r.entered_at)"}


def upgrade() -> None:
    op.create_table(
        "journey_entry_daily",
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("entered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("converted", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "day", name=op.f("pk_journey_entry_daily")),
    )
    op.create_table(
        "journey_reach_daily",
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("reached", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("first_row", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("journey_id", "day", "step_id", name=op.f("pk_journey_reach_daily")),
    )
    day = _DAY["postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"]
    op.execute(_ENTRIES.format(day=day))
    op.execute(_REACHED.format(day=day))


def downgrade() -> None:
    op.drop_table("journey_reach_daily")
    op.drop_table("journey_entry_daily")
