from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import UTCDateTime, bigint_pk, json_type

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("entity_type", sa.String(32), nullable=False),
    sa.Column("entity_id", sa.String(64)),
    sa.Column("data", json_type()),
    sa.Column("redacted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_audit_log_entity_type_entity_id", "entity_type", "entity_id"),
    sa.Index("ix_audit_log_at", "at"),
)
