"""The event log. Append-only; ``processed_at IS NULL`` marks work for the processor."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, bigint_pk, json_type

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("message_id", sa.String(100), nullable=False, unique=True),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("event", sa.String(255)),
    sa.Column("name", sa.String(255)),
    sa.Column("user_id", sa.String(255)),
    sa.Column("anonymous_id", sa.String(255)),
    sa.Column("group_id", sa.String(255)),
    sa.Column("previous_id", sa.String(255)),
    sa.Column("contact_id", sa.String(ID_LENGTH)),  # no FK: see docs/architecture.md, "references"
    sa.Column("properties", json_type()),
    sa.Column("traits", json_type()),
    sa.Column("context", json_type()),
    sa.Column("integrations", json_type()),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("processed_at", UTCDateTime()),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Index(
        "ix_events_pending",
        "id",
        postgresql_where=sa.text("processed_at IS NULL"),
        sqlite_where=sa.text("processed_at IS NULL"),
    ),
    sa.Index("ix_events_contact_id_timestamp", "contact_id", "timestamp"),
    sa.Index("ix_events_event_timestamp", "event", "timestamp"),
    sa.Index(
        "ix_events_failed",
        "id",
        postgresql_where=sa.text("error IS NOT NULL"),
        sqlite_where=sa.text("error IS NOT NULL"),
    ),
)
