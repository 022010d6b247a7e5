"""The kernel's own tables: per-installation values and operator-editable configuration."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import UTCDateTime, json_type

#: The generated secret key, first-start markers (:mod:`leadflow.kernel.instance`).
instance_values = sa.Table(
    "instance_values",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: Score bands, decay, the MQL rule … (:mod:`leadflow.kernel.config`).
config_entries = sa.Table(
    "config_entries",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", json_type(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
