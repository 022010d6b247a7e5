"""consultation booking: consultants' profiles, busy times, bookings and pending requests

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, json_type

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduling_profiles",
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("services", json_type(), nullable=False),
        sa.Column("availability", json_type(), nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("buffer_before", sa.Integer(), nullable=False),
        sa.Column("buffer_after", sa.Integer(), nullable=False),
        sa.Column("min_notice", sa.Integer(), nullable=False),
        sa.Column("horizon_days", sa.Integer(), nullable=False),
        sa.Column("ics_url", sa.Text(), nullable=True),
        sa.Column("ics_refreshed_at", UTCDateTime(), nullable=True),
        sa.Column("ics_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_scheduling_profiles")),
    )
    op.create_table(
        "scheduling_busy",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("summary", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduling_busy")),
    )
    op.create_index("ix_scheduling_busy_user_id_starts_at", "scheduling_busy", ["user_id", "starts_at"])
    op.create_table(
        "scheduling_bookings",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("user_id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=500), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("canceled_at", UTCDateTime(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=500), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["crm_users.id"], name=op.f("fk_scheduling_bookings_user_id_crm_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduling_bookings")),
    )
    op.create_index(
        "ux_scheduling_bookings_live_slot",
        "scheduling_bookings",
        ["user_id", "starts_at"],
        unique=True,
        sqlite_where=sa.text("status = 'booked'"),
        postgresql_where=sa.text("status = 'booked'"),
    )
    op.create_index("ix_scheduling_bookings_user_id_ends_at", "scheduling_bookings", ["user_id", "ends_at"])
    op.create_index("ix_scheduling_bookings_contact_id", "scheduling_bookings", ["contact_id"])
    op.create_index("ix_scheduling_bookings_external_id", "scheduling_bookings", ["external_id"])
    op.create_table(
        "scheduling_requests",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("contact_id", sa.String(length=26), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("service", sa.String(length=200), nullable=False),
        sa.Column("preferred", json_type(), nullable=False),
        sa.Column("tz", sa.String(length=64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("booking_id", sa.String(length=26), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduling_requests")),
    )
    op.create_index("ix_scheduling_requests_contact_id", "scheduling_requests", ["contact_id"])


def downgrade() -> None:
    op.drop_table("scheduling_requests")
    op.drop_table("scheduling_bookings")
    op.drop_table("scheduling_busy")
    op.drop_table("scheduling_profiles")
