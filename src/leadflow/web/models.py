"""Tables owned by the console: users' password hashes and their sessions (server-side)."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime

# A CRM user's password (argon2id; the hash carries its parameters and salt). No row: no password yet.
web_credentials = sa.Table(
    "web_credentials",
    metadata,
    sa.Column("user_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id"), primary_key=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("changed_at", UTCDateTime(), nullable=False),
)

# A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a read of this
# table signs nobody in. A session ends at ``expires_at`` (absolute) or when idle too long (last_seen_at).
web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("user_agent", sa.String(300)),
    sa.Index("ix_web_sessions_user_id", "user_id"),
)
