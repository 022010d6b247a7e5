"""webhook replay tokens: signature tokens of applied provider webhooks, kept for the signature window

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_replay_tokens",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("body_digest", sa.String(length=64), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "token", name=op.f("pk_webhook_replay_tokens")),
    )
    with op.batch_alter_table("webhook_replay_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_replay_tokens_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_replay_tokens", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_replay_tokens_expires_at")
    op.drop_table("webhook_replay_tokens")
