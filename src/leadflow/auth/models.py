from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("revoked_at", UTCDateTime()),
    sa.Column("last_used_at", UTCDateTime()),  # to within a minute (see auth.service.KeyCache)
)
