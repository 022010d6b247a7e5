"""crm deals: pipelines with ordered stages, deals and their time in each stage; the default
course-sales pipeline

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.ids import new_id
from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Frozen copies of leadflow.crm.pipelines' defaults (a migration never imports domain code).
DEFAULT_NAME = "Course sales"
DEFAULT_STAGES = (
    {"name": "interest", "probability": 10, "kind": "open"},
    {"name": "consultation booked", "probability": 40, "kind": "open"},
    {"name": "proposal", "probability": 70, "kind": "open"},
    {"name": "won", "probability": 100, "kind": "won"},
    {"name": "lost", "probability": 0, "kind": "lost"},
)
DEFAULT_RULES = [
    {"event": "consultation_scheduled", "stage": "consultation booked", "create": True},
    {"event": "Order Completed", "stage": "won", "reason": "paid", "create": True},
]


def upgrade() -> None:
    op.create_table(
        "crm_pipelines",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("rules", json_type(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_pipelines")),
        sa.UniqueConstraint("name", name=op.f("uq_crm_pipelines_name")),
    )
    op.create_table(
        "crm_stages",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("pipeline_id", sa.String(length=26), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["crm_pipelines.id"], name=op.f("fk_crm_stages_pipeline_id_crm_pipelines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_stages")),
        sa.UniqueConstraint("pipeline_id", "name", name=op.f("uq_crm_stages_pipeline_id_name")),
    )
    op.create_table(
        "crm_deals",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("pipeline_id", sa.String(length=26), nullable=False),
        sa.Column("stage_id", sa.String(length=26), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("value", sa.Numeric(20, 4), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("expected_close", sa.Date(), nullable=True),
        sa.Column("owner_id", sa.String(length=26), nullable=True),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("company_id", sa.String(length=26), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], ["crm_pipelines.id"], name=op.f("fk_crm_deals_pipeline_id_crm_pipelines")
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["crm_stages.id"], name=op.f("fk_crm_deals_stage_id_crm_stages")
        ),
        sa.ForeignKeyConstraint(["owner_id"], ["crm_users.id"], name=op.f("fk_crm_deals_owner_id_crm_users")),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_crm_deals_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_crm_deals_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_deals")),
    )
    op.create_index("ix_crm_deals_created_at", "crm_deals", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_crm_deals_pipeline_id_stage_id", "crm_deals", ["pipeline_id", "stage_id"], unique=False
    )
    op.create_index("ix_crm_deals_owner_id", "crm_deals", ["owner_id"], unique=False)
    op.create_index("ix_crm_deals_contact_id", "crm_deals", ["contact_id"], unique=False)
    op.create_index("ix_crm_deals_stage_id", "crm_deals", ["stage_id"], unique=False)
    op.create_table(
        "crm_deal_stages",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("deal_id", sa.String(length=26), nullable=False),
        sa.Column("stage_id", sa.String(length=26), nullable=False),
        sa.Column("entered_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["deal_id"], ["crm_deals.id"], name=op.f("fk_crm_deal_stages_deal_id_crm_deals")
        ),
        sa.ForeignKeyConstraint(
            ["stage_id"], ["crm_stages.id"], name=op.f("fk_crm_deal_stages_stage_id_crm_stages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_deal_stages")),
    )
    op.create_index("ix_crm_deal_stages_deal_id", "crm_deal_stages", ["deal_id", "entered_at"], unique=False)
    op.create_index(
        "ix_crm_deal_stages_stage_id_entered_at",
        "crm_deal_stages",
        ["stage_id", "entered_at", "deal_id"],
        unique=False,
    )
    _default_pipeline()


def _default_pipeline() -> None:
    """The course-sales pipeline, marked default (the app also makes it on start when missing)."""
    now, pipeline_id = datetime.now(UTC), new_id()
    pipelines = sa.table(
        "crm_pipelines",
        sa.column("id"),
        sa.column("name"),
        sa.column("is_default"),
        sa.column("rules", json_type()),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    stages = sa.table(
        "crm_stages",
        *(sa.column(c) for c in ("id", "pipeline_id", "name", "position", "probability", "kind")),
    )
    op.execute(
        pipelines.insert().values(
            id=pipeline_id,
            name=DEFAULT_NAME,
            is_default=True,
            rules=DEFAULT_RULES,
            created_at=now,
            updated_at=now,
        )
    )
    op.execute(
        stages.insert().values(
            [
                {"id": new_id(), "pipeline_id": pipeline_id, "position": n, **stage}
                for n, stage in enumerate(DEFAULT_STAGES)
            ]
        )
    )


def downgrade() -> None:
    op.drop_index("ix_crm_deal_stages_stage_id_entered_at", table_name="crm_deal_stages")
    op.drop_index("ix_crm_deal_stages_deal_id", table_name="crm_deal_stages")
    op.drop_table("crm_deal_stages")
    for name in (
        "ix_crm_deals_stage_id",
        "ix_crm_deals_contact_id",
        "ix_crm_deals_owner_id",
        "ix_crm_deals_pipeline_id_stage_id",
        "ix_crm_deals_created_at",
    ):
        op.drop_index(name, table_name="crm_deals")
    op.drop_table("crm_deals")
    op.drop_table("crm_stages")
    op.drop_table("crm_pipelines")
