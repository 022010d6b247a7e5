"""read paths: a trigram index on contacts.user_id (the contact search), partial indexes for who opened or
clicked a template's messages, and api_keys.last_used_at

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_ENGAGED = (
    ("ix_messages_template_id_opened_at", "opened_at", "opened_at IS NOT NULL"),
    ("ix_messages_template_id_clicked_at", "clicked_at", "clicked_at IS NOT NULL"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_contacts_user_id_trgm",
        "contacts",
        ["user_id"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"user_id": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    )
    for name, column, engaged in _ENGAGED:
        op.create_index(
            name,
            "messages",
            ["template_id", column],
            unique=False,
            postgresql_where=sa.text(engaged),
            sqlite_where=sa.text(engaged),
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("last_used_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
    op.drop_index("ix_messages_template_id_clicked_at", table_name="messages")
    op.drop_index("ix_messages_template_id_opened_at", table_name="messages")
    op.drop_index("ix_contacts_user_id_trgm", table_name="contacts")
