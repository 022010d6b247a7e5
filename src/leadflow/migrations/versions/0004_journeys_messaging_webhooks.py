"""journeys messaging webhooks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("segment_id", sa.String(length=26), nullable=False),
        sa.Column("template_id", sa.String(length=26), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("send_at", UTCDateTime(), nullable=True),
        sa.Column("per_minute", sa.Integer(), nullable=True),
        sa.Column("recipients", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcasts")),
    )
    op.create_table(
        "email_layouts",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_layouts")),
        sa.UniqueConstraint("key", name=op.f("uq_email_layouts_key")),
    )
    op.create_table(
        "email_preferences",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("subscribed", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "topic", name=op.f("pk_email_preferences")),
    )
    op.create_table(
        "email_templates",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("layout", sa.String(length=100), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("mjml", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
        sa.UniqueConstraint("key", name=op.f("uq_email_templates_key")),
    )
    op.create_table(
        "email_topics",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("default_subscribed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_email_topics")),
    )
    op.create_table(
        "journey_runs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("entry_key", sa.String(length=200), nullable=False),
        sa.Column("active_key", sa.String(length=26), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("variant", sa.String(length=64), nullable=True),
        sa.Column("trigger", json_type(), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("exit_reason", sa.String(length=64), nullable=True),
        sa.Column("goal_until", UTCDateTime(), nullable=True),
        sa.Column("converted_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_runs")),
        sa.UniqueConstraint("journey_id", "active_key", name=op.f("uq_journey_runs_journey_id_active_key")),
        sa.UniqueConstraint(
            "journey_id",
            "contact_id",
            "entry_key",
            name=op.f("uq_journey_runs_journey_id_contact_id_entry_key"),
        ),
    )
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.create_index("ix_journey_runs_contact_id", ["contact_id"], unique=False)
        batch_op.create_index("ix_journey_runs_journey_id_status", ["journey_id", "status"], unique=False)

    op.create_table(
        "journey_steps",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=26), nullable=False),
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("step_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("waiting_for", sa.String(length=255), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("branch", sa.String(length=64), nullable=True),
        sa.Column("detail", json_type(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journey_steps")),
    )
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journey_steps_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index("ix_journey_steps_journey_id_step_id", ["journey_id", "step_id"], unique=False)
        batch_op.create_index("ix_journey_steps_run_id", ["run_id"], unique=False)
        batch_op.create_index(
            "ix_journey_steps_waiting",
            ["contact_id", "waiting_for"],
            unique=False,
            postgresql_where=sa.text("status = 'pending' AND waiting_for IS NOT NULL"),
            sqlite_where=sa.text("status = 'pending' AND waiting_for IS NOT NULL"),
        )

    op.create_table(
        "journeys",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("definition", json_type(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column("next_fire_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journeys")),
        sa.UniqueConstraint("key", name=op.f("uq_journeys_key")),
    )
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.create_index("ix_journeys_status", ["status"], unique=False)

    op.create_table(
        "messages",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=True),
        sa.Column("template_id", sa.String(length=26), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=True),
        sa.Column("journey_id", sa.String(length=26), nullable=True),
        sa.Column("run_id", sa.String(length=26), nullable=True),
        sa.Column("step_id", sa.String(length=64), nullable=True),
        sa.Column("broadcast_id", sa.String(length=26), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("context", json_type(), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=True),
        sa.Column("clicked_at", UTCDateTime(), nullable=True),
        sa.Column("bounced_at", UTCDateTime(), nullable=True),
        sa.Column("complained_at", UTCDateTime(), nullable=True),
        sa.Column("unsubscribed_at", UTCDateTime(), nullable=True),
        sa.Column("opens", sa.Integer(), server_default="0", nullable=False),
        sa.Column("clicks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("machine_hits", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("key", name=op.f("uq_messages_key")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index("ix_messages_broadcast_id_status", ["broadcast_id", "status"], unique=False)
        batch_op.create_index("ix_messages_contact_id_created_at", ["contact_id", "created_at"], unique=False)
        batch_op.create_index(
            "ix_messages_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('queued', 'deferred')"),
            sqlite_where=sa.text("status IN ('queued', 'deferred')"),
        )
        batch_op.create_index("ix_messages_journey_id", ["journey_id"], unique=False)

    op.create_table(
        "suppressions",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("message_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("payload", json_type(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("response_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("journey_id", sa.String(length=26), nullable=True),
        sa.Column("run_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_webhook_deliveries_key")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_deliveries_due",
            ["due_at"],
            unique=False,
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.create_table(
        "journey_versions",
        sa.Column("journey_id", sa.String(length=26), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", json_type(), nullable=False),
        sa.Column("published_at", UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["journey_id"], ["journeys.id"], name=op.f("fk_journey_versions_journey_id_journeys")
        ),
        sa.PrimaryKeyConstraint("journey_id", "version", name=op.f("pk_journey_versions")),
    )


def downgrade() -> None:
    op.drop_table("journey_versions")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_deliveries_due",
            postgresql_where=sa.text("status = 'queued'"),
            sqlite_where=sa.text("status = 'queued'"),
        )

    op.drop_table("webhook_deliveries")
    op.drop_table("suppressions")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_journey_id")
        batch_op.drop_index(
            "ix_messages_due",
            postgresql_where=sa.text("status IN ('queued', 'deferred')"),
            sqlite_where=sa.text("status IN ('queued', 'deferred')"),
        )
        batch_op.drop_index("ix_messages_contact_id_created_at")
        batch_op.drop_index("ix_messages_broadcast_id_status")

    op.drop_table("messages")
    with op.batch_alter_table("journeys", schema=None) as batch_op:
        batch_op.drop_index("ix_journeys_status")

    op.drop_table("journeys")
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_journey_steps_waiting",
            postgresql_where=sa.text("status = 'pending' AND waiting_for IS NOT NULL"),
            sqlite_where=sa.text("status = 'pending' AND waiting_for IS NOT NULL"),
        )
        batch_op.drop_index("ix_journey_steps_run_id")
        batch_op.drop_index("ix_journey_steps_journey_id_step_id")
        batch_op.drop_index(
            "ix_journey_steps_due",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )

    op.drop_table("journey_steps")
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_runs_journey_id_status")
        batch_op.drop_index("ix_journey_runs_contact_id")

    op.drop_table("journey_runs")
    op.drop_table("email_topics")
    op.drop_table("email_templates")
    op.drop_table("email_preferences")
    op.drop_table("email_layouts")
    op.drop_table("broadcasts")
