"""crm: per-(stage, day) counters for the pipeline stats, backfilled from the deals and their stage visits

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

# The backfill, as leadflow.crm.queries.pipeline_stats.fill_flow / fill_deals do it today (frozen here):
# every visit counts on its UTC day of entry; each deal's first entry into a stage counts ``reached`` on
# that day, and ``onward`` when the deal has ever been in the stage at position + 1 of the pipeline.
_FLOW = """
INSERT INTO crm_stage_days
    (stage_id, day, pipeline_id, reached, onward, visits, open_visits, closed_seconds, open_entered)
WITH firsts AS (
    SELECT deal_id, stage_id, min(entered_at) AS first_at FROM crm_deal_stages GROUP BY deal_id, stage_id
), parts AS (
    SELECT stage_id, {day_entered} AS day, 0 AS reached, 0 AS onward, 1 AS visits,
           CASE WHEN left_at IS NULL THEN 1 ELSE 0 END AS open_visits,
           CASE WHEN left_at IS NULL THEN 0.0 ELSE {seconds} END AS closed_seconds,
           CASE WHEN left_at IS NULL THEN {epoch} ELSE 0.0 END AS open_entered
    FROM crm_deal_stages
    UNION ALL
    SELECT f.stage_id, {day_first}, 1, CASE WHEN EXISTS (
               SELECT 1 FROM crm_stages here
               JOIN crm_stages nxt ON nxt.pipeline_id = here.pipeline_id
                                     AND nxt.position = here.position + 1
               JOIN crm_deal_stages later ON later.stage_id = nxt.id AND later.deal_id = f.deal_id
               WHERE here.id = f.stage_id) THEN 1 ELSE 0 END,
           0, 0, 0.0, 0.0
    FROM firsts f
)
SELECT p.stage_id, p.day, s.pipeline_id, sum(p.reached), sum(p.onward), sum(p.visits), sum(p.open_visits),
       sum(p.closed_seconds), sum(p.open_entered)
FROM parts p JOIN crm_stages s ON s.id = p.stage_id
GROUP BY p.stage_id, p.day, s.pipeline_id
"""
_DEALS = """
INSERT INTO crm_stage_deal_days (stage_id, day, currency, pipeline_id, deals, total)
SELECT stage_id, {day_created}, currency, pipeline_id, count(*), sum(value)
FROM crm_deals GROUP BY stage_id, {day_created}, currency, pipeline_id
"""
_SQL = {
    "postgresql": {
        "day_entered": "CAST(timezone('UTC', entered_at) AS DATE)",
        "day_first": "CAST(timezone('UTC', f.first_at) AS DATE)",
        "day_created": "CAST(timezone('UTC', created_at) AS DATE)",
        "seconds": "CAST(EXTRACT(EPOCH FROM left_at - entered_at) AS DOUBLE PRECISION)",
        "epoch": "CAST(EXTRACT(EPOCH FROM entered_at) AS DOUBLE PRECISION)",
    },
    "sqlite": {
        "day_entered": "date(entered_at)",
        "day_first": "date(f.first_at)",
        "day_created": "date(created_at)",
        "seconds": "(julianday(left_at) - julianday(entered_at)) * 86400.0",
        "epoch": "(julianday(entered_at) - 2440587.5) * 86400.0",
    },
}


def upgrade() -> None:
    op.create_table(
        "crm_stage_days",
        sa.Column("stage_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("pipeline_id", sa.String(length=26), nullable=False),
        sa.Column("reached", sa.BigInteger(), nullable=False),
        sa.Column("onward", sa.BigInteger(), nullable=False),
        sa.Column("visits", sa.BigInteger(), nullable=False),
        sa.Column("open_visits", sa.BigInteger(), nullable=False),
        sa.Column("closed_seconds", sa.Float(), nullable=False),
        sa.Column("open_entered", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("stage_id", "day", name=op.f("pk_crm_stage_days")),
    )
    op.create_index("ix_crm_stage_days_pipeline_id_day", "crm_stage_days", ["pipeline_id", "day"])
    op.create_table(
        "crm_stage_deal_days",
        sa.Column("stage_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("pipeline_id", sa.String(length=26), nullable=False),
        sa.Column("deals", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Numeric(precision=24, scale=4), nullable=False),
        sa.PrimaryKeyConstraint("stage_id", "day", "currency", name=op.f("pk_crm_stage_deal_days")),
    )
    op.create_index("ix_crm_stage_deal_days_pipeline_id_day", "crm_stage_deal_days", ["pipeline_id", "day"])
    expressions = _SQL["postgresql" if op.get_bind().dialect.name == "postgresql" else "sqlite"]
    op.execute(_FLOW.format(**expressions))
    op.execute(_DEALS.format(**expressions))


def downgrade() -> None:
    op.drop_table("crm_stage_deal_days")
    op.drop_table("crm_stage_days")
