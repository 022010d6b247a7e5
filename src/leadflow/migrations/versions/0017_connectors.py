"""CRM and email-platform connectors: connector instances, identity links, the sync outbox, the field
audit and the conflicts left for a human

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connector_audit",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=200), nullable=True),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("lag_ms", sa.Integer(), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_audit")),
    )
    with op.batch_alter_table("connector_audit", schema=None) as batch_op:
        batch_op.create_index("ix_connector_audit_connector", ["connector_id", "at"], unique=False)
        batch_op.create_index("ix_connector_audit_contact", ["contact_id", "at"], unique=False)

    op.create_table(
        "connector_conflicts",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("candidates", json_type(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_conflicts")),
    )
    with op.batch_alter_table("connector_conflicts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_connector_conflicts_connector", ["connector_id", "created_at"], unique=False
        )

    op.create_table(
        "connector_links",
        sa.Column("connector_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=False),
        sa.Column("remote_modified_at", UTCDateTime(), nullable=True),
        sa.Column("synced_at", UTCDateTime(), nullable=False),
        sa.Column("fields", json_type(), nullable=False),
        sa.PrimaryKeyConstraint("connector_id", "kind", "local_id", name=op.f("pk_connector_links")),
    )
    with op.batch_alter_table("connector_links", schema=None) as batch_op:
        batch_op.create_index(
            "ix_connector_links_remote", ["connector_id", "kind", "remote_id"], unique=False
        )

    op.create_table(
        "connector_outbox",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("local_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("payload", json_type(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("enqueued_at", UTCDateTime(), nullable=False),
        sa.Column("next_at", UTCDateTime(), nullable=False),
        sa.Column("leased_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("dead_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connector_outbox")),
        sa.UniqueConstraint(
            "connector_id", "kind", "local_id", name=op.f("uq_connector_outbox_connector_id_kind_local_id")
        ),
    )
    with op.batch_alter_table("connector_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_connector_outbox_contact", ["contact_id"], unique=False)
        batch_op.create_index(
            "ix_connector_outbox_due",
            ["next_at"],
            unique=False,
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )

    op.create_table(
        "connectors",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("vendor", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("host", sa.Text(), nullable=True),
        sa.Column("mapping", json_type(), nullable=False),
        sa.Column("triggers", json_type(), nullable=False),
        sa.Column("objects", json_type(), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("conflict", json_type(), nullable=False),
        sa.Column("limits", json_type(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("health_threshold", sa.Float(), nullable=False),
        sa.Column("pulled_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connectors")),
    )


def downgrade() -> None:
    op.drop_table("connectors")
    with op.batch_alter_table("connector_outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_connector_outbox_due",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        )
        batch_op.drop_index("ix_connector_outbox_contact")

    op.drop_table("connector_outbox")
    with op.batch_alter_table("connector_links", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_links_remote")

    op.drop_table("connector_links")
    with op.batch_alter_table("connector_conflicts", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_conflicts_connector")

    op.drop_table("connector_conflicts")
    with op.batch_alter_table("connector_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_audit_contact")
        batch_op.drop_index("ix_connector_audit_connector")

    op.drop_table("connector_audit")
