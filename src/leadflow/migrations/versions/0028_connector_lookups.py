"""connectors: indexes a busy outbox and a growing links table are read through without a scan

- ``ix_connector_outbox_due`` keyed ``(next_at, id)`` (was ``next_at``): the claim's order (oldest due
  first, then by id), so a claim walks the index and stops at its limit instead of sorting every due
  row of the backlog;
- ``ix_connector_links_remote`` keyed ``(connector_id, remote_id, kind)`` (was ``connector_id, kind,
  remote_id``): on a table whose statistics are stale (a first backfill grows it from empty faster than
  autovacuum analyses it) the planner could take it for the primary key ``(connector_id, kind,
  local_id)`` and read every link of the connector to find a batch's.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from alembic.operations import BatchOperations

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

_PENDING = sa.text("state = 'pending'")


def _due(batch_op: BatchOperations, columns: list[str]) -> None:
    batch_op.create_index(
        "ix_connector_outbox_due", columns, unique=False, postgresql_where=_PENDING, sqlite_where=_PENDING
    )


def upgrade() -> None:
    with op.batch_alter_table("connector_links", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_links_remote")
        batch_op.create_index(
            "ix_connector_links_remote", ["connector_id", "remote_id", "kind"], unique=False
        )
    with op.batch_alter_table("connector_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_outbox_due")
        _due(batch_op, ["next_at", "id"])


def downgrade() -> None:
    with op.batch_alter_table("connector_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_outbox_due")
        _due(batch_op, ["next_at"])
    with op.batch_alter_table("connector_links", schema=None) as batch_op:
        batch_op.drop_index("ix_connector_links_remote")
        batch_op.create_index(
            "ix_connector_links_remote", ["connector_id", "kind", "remote_id"], unique=False
        )
