"""Tables owned by the segments domain."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

segments = sa.Table(
    "segments",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(100), unique=True),  # set for shipped and system segments
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("kind", sa.String(16), nullable=False),  # dynamic | static
    sa.Column("rules", json_type()),
    sa.Column("dependencies", json_type(), nullable=False),
    sa.Column("time_relative", sa.Boolean, nullable=False),
    sa.Column("refresh_interval_seconds", sa.Integer, nullable=False),
    sa.Column("next_refresh_at", UTCDateTime()),
    sa.Column("last_refreshed_at", UTCDateTime()),
    sa.Column("member_count", sa.Integer, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),  # bumped on every change
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_segments_next_refresh_at", "next_refresh_at"),
)

segment_members = sa.Table(
    "segment_members",
    metadata,
    sa.Column("segment_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Index("ix_segment_members_contact_id", "contact_id"),
)
