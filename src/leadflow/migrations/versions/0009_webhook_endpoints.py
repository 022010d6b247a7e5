"""webhook endpoints: receivers registered by API, and the deliveries log (endpoint, replay, request and
response)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, json_type

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("event_types", json_type(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("rate_limit", sa.Float(), nullable=True),
        sa.Column("secret_salt", sa.String(length=64), nullable=False),
        sa.Column("previous_salt", sa.String(length=64), nullable=True),
        sa.Column("previous_until", UTCDateTime(), nullable=True),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("endpoint_id", sa.String(length=26), nullable=True))
        batch_op.add_column(sa.Column("replay_of", sa.String(length=26), nullable=True))
        batch_op.add_column(sa.Column("request_headers", json_type(), nullable=True))
        batch_op.add_column(sa.Column("response_headers", json_type(), nullable=True))
        batch_op.add_column(sa.Column("response_body", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("duration_ms", sa.Integer(), nullable=True))
        batch_op.create_index("ix_webhook_deliveries_endpoint", ["endpoint_id", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_endpoint")
        for name in ("duration_ms", "response_body", "response_headers", "request_headers", "replay_of"):
            batch_op.drop_column(name)
        batch_op.drop_column("endpoint_id")
    op.drop_table("webhook_endpoints")
