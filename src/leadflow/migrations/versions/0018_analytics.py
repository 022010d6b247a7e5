"""Analytics: daily and hourly rollups, lifecycle stage entries and the rollup's mark

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "analytics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("day", "metric", "dimension", "key", name=op.f("pk_analytics_daily")),
    )
    op.create_index("ix_analytics_daily_metric_day", "analytics_daily", ["metric", "dimension", "day"])
    op.create_table(
        "analytics_hourly",
        sa.Column("hour", UTCDateTime(), nullable=False),
        *_measures(),
        sa.PrimaryKeyConstraint("hour", "metric", "dimension", "key", name=op.f("pk_analytics_hourly")),
    )
    op.create_index("ix_analytics_hourly_metric_hour", "analytics_hourly", ["metric", "dimension", "hour"])
    op.create_table(
        "analytics_stage_entries",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("medium", sa.String(length=255), nullable=True),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("contact_id", "stage", name=op.f("pk_analytics_stage_entries")),
    )
    op.create_index("ix_analytics_stage_entries_stage_at", "analytics_stage_entries", ["stage", "entered_at"])
    op.create_index("ix_analytics_stage_entries_event", "analytics_stage_entries", ["event_id"])
    op.create_table(
        "analytics_marks",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("mark", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytics_marks")),
    )


def downgrade() -> None:
    op.drop_table("analytics_marks")
    op.drop_index("ix_analytics_stage_entries_event", table_name="analytics_stage_entries")
    op.drop_index("ix_analytics_stage_entries_stage_at", table_name="analytics_stage_entries")
    op.drop_table("analytics_stage_entries")
    op.drop_index("ix_analytics_hourly_metric_hour", table_name="analytics_hourly")
    op.drop_table("analytics_hourly")
    op.drop_index("ix_analytics_daily_metric_day", table_name="analytics_daily")
    op.drop_table("analytics_daily")
