"""inbound webhooks: the configured senders of /hooks/{source} and every verified delivery

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, json_type

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_sources",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("tolerance", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_webhook_sources")),
    )
    op.create_table(
        "inbound_webhooks",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=255), nullable=True),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("body", json_type(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("anonymous_id", sa.String(length=255), nullable=True),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_webhooks")),
        sa.UniqueConstraint("source", "sender_id", name=op.f("uq_inbound_webhooks_source_sender_id")),
    )
    with op.batch_alter_table("inbound_webhooks", schema=None) as batch_op:
        batch_op.create_index("ix_inbound_webhooks_email", ["email"], unique=False)
        batch_op.create_index("ix_inbound_webhooks_anonymous_id", ["anonymous_id"], unique=False)
        batch_op.create_index("ix_inbound_webhooks_status", ["status", "id"], unique=False)
        batch_op.create_index("ix_inbound_webhooks_subject", ["source", "subject"], unique=False)


def downgrade() -> None:
    op.drop_table("inbound_webhooks")
    op.drop_table("webhook_sources")
