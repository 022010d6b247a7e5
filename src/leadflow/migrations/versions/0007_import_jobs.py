"""import jobs: CSV imports through the API, with progress, rejected rows and warnings

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COUNTS = ("total", "processed", "created", "updated", "unchanged", "merged", "rejected")


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("mapping", json_type(), nullable=False),
        sa.Column("list_id", sa.String(length=26), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        *(sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in COUNTS),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_jobs")),
    )
    with op.batch_alter_table("import_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_import_jobs_status", ["status"], unique=False)
    op.create_table(
        "import_issues",
        sa.Column("id", bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(length=26), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("lines", json_type(), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("row_values", json_type(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["import_jobs.id"],
            name=op.f("fk_import_issues_job_id_import_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_issues")),
    )
    with op.batch_alter_table("import_issues", schema=None) as batch_op:
        batch_op.create_index("ix_import_issues_job_id_kind_line", ["job_id", "kind", "line"], unique=False)
        batch_op.create_index("ix_import_issues_email", ["email"], unique=False)
        batch_op.create_index("ix_import_issues_user_id", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("import_issues")
    op.drop_table("import_jobs")
