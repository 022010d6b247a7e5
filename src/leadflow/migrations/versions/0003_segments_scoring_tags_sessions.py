"""segments scoring tags sessions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.isodates import PATTERN
from leadflow.kernel.types import UTCDateTime, json_type

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


# Reads a date string exactly as leadflow.kernel.isodates does; NULL for anything else.
TRY_TIMESTAMPTZ = f"""
CREATE OR REPLACE FUNCTION leadflow_try_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $fn$
BEGIN
    IF value IS NULL OR value !~ '{PATTERN}' THEN
        RETURN NULL;
    END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$fn$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(TRY_TIMESTAMPTZ)
    op.create_table(
        "config_entries",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("value", json_type(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_config_entries")),
    )
    op.create_table(
        "contact_scores",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("behavioral", sa.Float(), nullable=False),
        sa.Column("demographic", sa.Float(), nullable=False),
        sa.Column("firmographic", sa.Float(), nullable=False),
        sa.Column("engagement", sa.Float(), nullable=False),
        sa.Column("band", sa.String(length=50), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_contact_scores")),
    )
    with op.batch_alter_table("contact_scores", schema=None) as batch_op:
        batch_op.create_index("ix_contact_scores_total", ["total"], unique=False)

    op.create_table(
        "scoring_rules",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=255), nullable=True),
        sa.Column("definition", json_type(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("max_occurrences", sa.Integer(), nullable=True),
        sa.Column("window_seconds", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_rules")),
    )
    op.create_table(
        "segment_members",
        sa.Column("segment_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id", "contact_id", name=op.f("pk_segment_members")),
    )
    with op.batch_alter_table("segment_members", schema=None) as batch_op:
        batch_op.create_index("ix_segment_members_contact_id", ["contact_id"], unique=False)

    op.create_table(
        "segments",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("rules", json_type(), nullable=True),
        sa.Column("dependencies", json_type(), nullable=False),
        sa.Column("time_relative", sa.Boolean(), nullable=False),
        sa.Column("refresh_interval_seconds", sa.Integer(), nullable=False),
        sa.Column("next_refresh_at", UTCDateTime(), nullable=True),
        sa.Column("last_refreshed_at", UTCDateTime(), nullable=True),
        sa.Column("member_count", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("key", name=op.f("uq_segments_key")),
    )
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.create_index("ix_segments_next_refresh_at", ["next_refresh_at"], unique=False)

    op.create_table(
        "score_counters",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["scoring_rules.id"],
            name=op.f("fk_score_counters_rule_id_scoring_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "rule_id", "day", name=op.f("pk_score_counters")),
    )
    with op.batch_alter_table("score_counters", schema=None) as batch_op:
        batch_op.create_index("ix_score_counters_rule_id_day", ["rule_id", "day"], unique=False)

    op.create_table(
        "score_points",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("rule_id", sa.String(length=26), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("points", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["scoring_rules.id"],
            name=op.f("fk_score_points_rule_id_scoring_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contact_id", "rule_id", name=op.f("pk_score_points")),
    )
    with op.batch_alter_table("score_points", schema=None) as batch_op:
        batch_op.create_index("ix_score_points_rule_id", ["rule_id"], unique=False)

    op.create_table(
        "contact_tags",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("tag", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_contact_tags_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("contact_id", "tag", name=op.f("pk_contact_tags")),
    )
    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.create_index("ix_contact_tags_tag", ["tag"], unique=False)

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sessions", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_event_timestamp", ["event", "timestamp"], unique=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS leadflow_try_timestamptz(text)")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_event_timestamp")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("sessions")

    with op.batch_alter_table("contact_tags", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_tags_tag")

    op.drop_table("contact_tags")
    with op.batch_alter_table("score_points", schema=None) as batch_op:
        batch_op.drop_index("ix_score_points_rule_id")

    op.drop_table("score_points")
    with op.batch_alter_table("score_counters", schema=None) as batch_op:
        batch_op.drop_index("ix_score_counters_rule_id_day")

    op.drop_table("score_counters")
    with op.batch_alter_table("segments", schema=None) as batch_op:
        batch_op.drop_index("ix_segments_next_refresh_at")

    op.drop_table("segments")
    with op.batch_alter_table("segment_members", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_members_contact_id")

    op.drop_table("segment_members")
    op.drop_table("scoring_rules")
    with op.batch_alter_table("contact_scores", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_scores_total")

    op.drop_table("contact_scores")
    op.drop_table("config_entries")
