"""analytics: threshold alert rules and their incidents, scheduled KPI digests and their sends

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, json_type

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("user_ids", json_type(), nullable=False),
        sa.Column("webhook", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
    )
    op.create_table(
        "alert_incidents",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("opened_value", sa.Float(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_value", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alert_incidents_open_key")),
    )
    op.create_index("ix_alert_incidents_rule_opened", "alert_incidents", ["rule_id", "opened_at"])
    op.create_table(
        "report_digests",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("user_ids", json_type(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_digests")),
    )
    op.create_index("ix_report_digests_due", "report_digests", ["enabled", "next_at"])
    op.create_table(
        "report_digest_sends",
        sa.Column("digest_id", sa.String(length=26), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("digest_id", "due_at", name=op.f("pk_report_digest_sends")),
    )


def downgrade() -> None:
    op.drop_table("report_digest_sends")
    op.drop_index("ix_report_digests_due", table_name="report_digests")
    op.drop_table("report_digests")
    op.drop_index("ix_alert_incidents_rule_opened", table_name="alert_incidents")
    op.drop_table("alert_incidents")
    op.drop_table("alert_rules")
