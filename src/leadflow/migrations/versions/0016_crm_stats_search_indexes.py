"""crm performance: covering indexes for the pipeline stats, a pg_trgm index for the lead search

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TRGM = {"email": "gin_trgm_ops", "first_name": "gin_trgm_ops", "last_name": "gin_trgm_ops"}


def upgrade() -> None:
    op.create_index(
        "ix_crm_deals_created_at_stage_id",
        "crm_deals",
        ["created_at", "stage_id", "currency", "value"],
        unique=False,
    )
    op.create_index(
        "ix_crm_deal_stages_entered_at",
        "crm_deal_stages",
        ["entered_at", "stage_id", "deal_id", "left_at"],
        unique=False,
    )
    op.create_index(
        "ix_crm_deal_stages_deal_id_stage_id", "crm_deal_stages", ["deal_id", "stage_id"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_contacts_search_trgm",
        "contacts",
        ["email", "first_name", "last_name"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops=_TRGM,
        sqlite_where=sa.text("0"),
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_search_trgm", table_name="contacts")
    op.drop_index("ix_crm_deal_stages_deal_id_stage_id", table_name="crm_deal_stages")
    op.drop_index("ix_crm_deal_stages_entered_at", table_name="crm_deal_stages")
    op.drop_index("ix_crm_deals_created_at_stage_id", table_name="crm_deals")
