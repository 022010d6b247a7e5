"""crm routing and SLAs: routing rules, the rotation's counters, the routing/SLA configuration and
each qualified lead's SLA state

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, json_type

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_routing_rules",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("condition", json_type(), nullable=True),
        sa.Column("team_id", sa.String(length=26), nullable=True),
        sa.Column("user_id", sa.String(length=26), nullable=True),
        sa.Column("respect_working_hours", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["crm_teams.id"], name=op.f("fk_crm_routing_rules_team_id_crm_teams")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["crm_users.id"], name=op.f("fk_crm_routing_rules_user_id_crm_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_routing_rules")),
    )
    op.create_index("ix_crm_routing_rules_position", "crm_routing_rules", ["position", "id"])
    op.create_table(
        "crm_routing_counts",
        sa.Column("team_id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("assigned", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_crm_routing_counts")),
    )
    op.create_table(
        "crm_config",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("fallback_owner_id", sa.String(length=26), nullable=True),
        sa.Column("assign_within_seconds", sa.Integer(), nullable=False),
        sa.Column("first_response_within_seconds", sa.Integer(), nullable=False),
        sa.Column("escalate_after_seconds", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["fallback_owner_id"], ["crm_users.id"], name=op.f("fk_crm_config_fallback_owner_id_crm_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_config")),
    )
    op.create_table(
        "crm_lead_sla",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("owner_id", sa.String(length=26), nullable=True),
        sa.Column("qualified_at", UTCDateTime(), nullable=False),
        sa.Column("assigned_at", UTCDateTime(), nullable=True),
        sa.Column("assign_breached_at", UTCDateTime(), nullable=True),
        sa.Column("first_response_due_at", UTCDateTime(), nullable=True),
        sa.Column("breached_at", UTCDateTime(), nullable=True),
        sa.Column("alerted_at", UTCDateTime(), nullable=True),
        sa.Column("escalate_due_at", UTCDateTime(), nullable=True),
        sa.Column("escalated_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_crm_lead_sla_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_crm_lead_sla")),
    )
    op.create_index("ix_crm_lead_sla_qualified_at", "crm_lead_sla", ["qualified_at"])
    op.create_index("ix_crm_lead_sla_first_response_due_at", "crm_lead_sla", ["first_response_due_at"])
    op.create_index("ix_crm_lead_sla_escalate_due_at", "crm_lead_sla", ["escalate_due_at"])
    op.create_index("ix_crm_lead_sla_owner_id", "crm_lead_sla", ["owner_id", "qualified_at"])


def downgrade() -> None:
    op.drop_table("crm_lead_sla")
    op.drop_table("crm_config")
    op.drop_table("crm_routing_counts")
    op.drop_table("crm_routing_rules")
