"""contacts: the kept total of contacts (``contact_totals``, one row), backfilled with a count

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_totals",
        sa.Column("id", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("contacts", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_totals")),
    )
    op.execute("INSERT INTO contact_totals (id, contacts) SELECT 1, count(*) FROM contacts")


def downgrade() -> None:
    op.drop_table("contact_totals")
