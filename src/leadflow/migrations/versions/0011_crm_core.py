"""crm core: users, teams, leads and the activity timeline; contacts already at stage lead or later
become new leads

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

LEAD_STAGES = ("lead", "mql", "sql", "customer", "advocate")


def upgrade() -> None:
    op.create_table(
        "crm_teams",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lead_user_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_crm_teams_name")),
    )
    op.create_table(
        "crm_users",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("team_id", sa.String(length=26), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("working_hours", json_type(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["team_id"], ["crm_teams.id"], name=op.f("fk_crm_users_team_id_crm_teams")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_users")),
        sa.UniqueConstraint("email", name=op.f("uq_crm_users_email")),
    )
    op.create_index("ix_crm_users_team_id", "crm_users", ["team_id"], unique=False)
    op.create_table(
        "crm_leads",
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(length=26), nullable=True),
        sa.Column("source", sa.String(length=255), nullable=True),
        sa.Column("status_changed_at", UTCDateTime(), nullable=False),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_crm_leads_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["crm_users.id"], name=op.f("fk_crm_leads_owner_id_crm_users")),
        sa.PrimaryKeyConstraint("contact_id", name=op.f("pk_crm_leads")),
    )
    op.create_index("ix_crm_leads_created_at", "crm_leads", ["created_at", "contact_id"], unique=False)
    op.create_index(
        "ix_crm_leads_status_created_at", "crm_leads", ["status", "created_at", "contact_id"], unique=False
    )
    op.create_index(
        "ix_crm_leads_owner_id_created_at",
        "crm_leads",
        ["owner_id", "created_at", "contact_id"],
        unique=False,
    )
    op.create_index("ix_crm_leads_updated_at", "crm_leads", ["updated_at"], unique=False)
    op.create_index("ix_crm_leads_source", "crm_leads", ["source"], unique=False)
    op.create_table(
        "crm_activities",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("owner_id", sa.String(length=26), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_crm_activities_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["crm_users.id"], name=op.f("fk_crm_activities_owner_id_crm_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_activities")),
    )
    op.create_index(
        "ix_crm_activities_contact_id_occurred_at",
        "crm_activities",
        ["contact_id", "occurred_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_crm_activities_open_tasks",
        "crm_activities",
        ["owner_id", "due_at"],
        unique=False,
        postgresql_where=sa.text("kind = 'task' AND done_at IS NULL"),
        sqlite_where=sa.text("kind = 'task' AND done_at IS NULL"),
    )
    _backfill_leads()


def _backfill_leads() -> None:
    """Contacts already at stage lead or later are new leads (sourced from their ``source`` trait)."""
    contacts = sa.table(
        "contacts",
        sa.column("id", sa.String()),
        sa.column("traits", json_type()),
        sa.column("lifecycle_stage", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    leads = sa.table(
        "crm_leads",
        *(sa.column(name) for name in ("contact_id", "source", "status", "status_changed_at", "created_at")),
        sa.column("updated_at"),
    )
    now = sa.literal(datetime.now(UTC), UTCDateTime())
    source = sa.func.substr(contacts.c.traits["source"].as_string(), 1, 255)
    rows = sa.select(contacts.c.id, source, sa.literal("new"), now, contacts.c.created_at, now).where(
        contacts.c.lifecycle_stage.in_(LEAD_STAGES)
    )
    op.execute(
        leads.insert().from_select(
            ["contact_id", "source", "status", "status_changed_at", "created_at", "updated_at"], rows
        )
    )


def downgrade() -> None:
    op.drop_index("ix_crm_activities_open_tasks", table_name="crm_activities")
    op.drop_index("ix_crm_activities_contact_id_occurred_at", table_name="crm_activities")
    op.drop_table("crm_activities")
    for name in (
        "ix_crm_leads_source",
        "ix_crm_leads_updated_at",
        "ix_crm_leads_owner_id_created_at",
        "ix_crm_leads_status_created_at",
        "ix_crm_leads_created_at",
    ):
        op.drop_index(name, table_name="crm_leads")
    op.drop_table("crm_leads")
    op.drop_index("ix_crm_users_team_id", table_name="crm_users")
    op.drop_table("crm_users")
    op.drop_table("crm_teams")
