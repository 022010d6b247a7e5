"""journeys: per-(split step, path, day) counters for the A/B readouts (``journey_split_daily``) and
``journey_steps.clicked_at`` (an exposure's click counts once), backfilled from the runs, steps and events

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# The backfill, as leadflow.journeys.splits.rebuild does it today (frozen here). An exposure is a split
# step's row done with a path; its click is the contact's first human leadflow.email_clicked from the
# journey at or after it; the counters count, per journey, split step, path and the exposure's UTC
# day, the exposures, those whose run converted and those with a click.
_EXPOSURE = "type = 'split' AND status = 'done' AND branch IS NOT NULL"
_CLICKS = f"""
UPDATE journey_steps SET clicked_at = (
    SELECT min(e.timestamp) FROM events e
    WHERE e.contact_id = journey_steps.contact_id AND e.event = 'leadflow.email_clicked'
      AND e.timestamp >= journey_steps.finished_at AND {{journey}} = journey_steps.journey_id
      AND coalesce({{machine}}, false) = false)
WHERE {_EXPOSURE}
"""
_COUNTS = """
INSERT INTO journey_split_daily (journey_id, step_id, branch, day, exposures, goals, clicks)
SELECT s.journey_id, s.step_id, s.branch, {day}, count(*), count(r.converted_at), count(s.clicked_at)
FROM journey_steps s JOIN journey_runs r ON r.id = s.run_id
WHERE s.type = 'split' AND s.status = 'done' AND s.branch IS NOT NULL
GROUP BY s.journey_id, s.step_id, s.branch, {day}
"""
_SQL = {
    "postgresql": {
        "journey": "(e.properties ->> 'journey_id')",
        "machine": "CAST(e.properties ->> 'machine_generated' AS BOOLEAN)",
        "day": "CAST(timezone('UTC', s.finished_at) AS DATE)",
    },
    "sqlite": {
        "journey": "CAST(json_extract(e.properties, '$.journey_id') AS VARCHAR)",
        "machine": "CAST(json_extract(e.properties, '$.machine_generated') AS BOOLEAN)",
        "day": "date(s.finished_at)",
    },
}


def upgrade() -> None:
    op.create_table(
        "journey_split_daily",
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("branch", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("exposures", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("goals", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("clicks", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "journey_id", "step_id", "branch", "day", name=op.f("pk_journey_split_daily")
        ),
    )
    op.add_column("journey_steps", sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=True))
    expressions = _SQL["postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"]
    op.execute(_CLICKS.format(**expressions))
    op.execute(_COUNTS.format(**expressions))


def downgrade() -> None:
    with op.batch_alter_table("journey_steps") as batch:
        batch.drop_column("clicked_at")
    op.drop_table("journey_split_daily")
