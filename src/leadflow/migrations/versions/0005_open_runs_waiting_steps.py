"""open runs and waiting (also held) steps: partial indexes for the processing hot path

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OPEN_RUN = "converted_at IS NULL AND (status = 'active' OR goal_until IS NOT NULL)"
WAITING_STEP = "status IN ('pending', 'held') AND waiting_for IS NOT NULL"
PENDING_WAITING = "status = 'pending' AND waiting_for IS NOT NULL"


def _waiting(where: str) -> None:
    with op.batch_alter_table("journey_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_steps_waiting")
        batch_op.create_index(
            "ix_journey_steps_waiting",
            ["contact_id", "waiting_for"],
            unique=False,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )


def upgrade() -> None:
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_journey_runs_open",
            ["contact_id"],
            unique=False,
            postgresql_where=sa.text(OPEN_RUN),
            sqlite_where=sa.text(OPEN_RUN),
        )
    _waiting(WAITING_STEP)


def downgrade() -> None:
    _waiting(PENDING_WAITING)
    with op.batch_alter_table("journey_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_journey_runs_open")
