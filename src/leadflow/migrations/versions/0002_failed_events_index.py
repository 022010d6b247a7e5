"""failed events index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_events_failed",
            ["id"],
            unique=False,
            postgresql_where=sa.text("error IS NOT NULL"),
            sqlite_where=sa.text("error IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_events_failed",
            postgresql_where=sa.text("error IS NOT NULL"),
            sqlite_where=sa.text("error IS NOT NULL"),
        )
