"""contacts: the search's haystack in one column (``search_text``) with one trigram index

``search_text`` is generated from the email, the user id and the names (``contacts.models.SEARCH_TEXT``, copied here):
stored on PostgreSQL (adding it rewrites the table: about 20 s and 15 s for the index at a million
contacts, with the table locked meanwhile), computed on read on SQLite (``ALTER TABLE`` cannot add a
stored one there; SQLite has no trigram index to feed). ``ix_contacts_search_text_trgm`` replaces
``ix_contacts_user_id_trgm`` (migration 0022), which only the search read.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

# contacts.models.SEARCH_TEXT as of this revision (the parts apart by a tab)
SEARCH_TEXT = (
    "lower(coalesce(email, '') || '\t' || coalesce(user_id, '') || '\t'"
    " || coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
)


def upgrade() -> None:
    stored = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "contacts",
        sa.Column("search_text", sa.Text, sa.Computed(SEARCH_TEXT, persisted=True if stored else None)),
    )
    op.drop_index("ix_contacts_user_id_trgm", table_name="contacts")
    op.create_index(
        "ix_contacts_search_text_trgm",
        "contacts",
        ["search_text"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    )


def downgrade() -> None:
    op.drop_index("ix_contacts_search_text_trgm", table_name="contacts")
    op.create_index(
        "ix_contacts_user_id_trgm",
        "contacts",
        ["user_id"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"user_id": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    )
    op.drop_column("contacts", "search_text")
