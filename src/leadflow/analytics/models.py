"""Analytics tables: rollups maintained incrementally from the event log, and the rollup's mark.

``analytics_daily`` / ``analytics_hourly`` hold one row per (bucket, metric, dimension, key): a count
and a summed value. Every KPI is a sum over these rows for a period, so no page scans the event log.
A new metric (``order.completed`` with its revenue in ``value``) is new rows, never a new column.
``analytics_stage_entries`` keeps the first time each contact entered each lifecycle stage (the
medians of time between stages need the pairs); ``analytics_marks`` the last event id rolled up.
"""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime

_METRIC = 64  # e.g. stage.entered, email.opened.machine, track
_DIMENSION = 16  # '' (total), stage, utm, template, journey, step, broadcast, event
_KEY = 255


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("metric", sa.String(_METRIC), primary_key=True),
        sa.Column("dimension", sa.String(_DIMENSION), primary_key=True),
        sa.Column("key", sa.String(_KEY), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
    ]


analytics_daily = sa.Table(
    "analytics_daily",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),  # UTC day
    *_measures(),
    sa.Index("ix_analytics_daily_metric_day", "metric", "dimension", "day"),
)

analytics_hourly = sa.Table(
    "analytics_hourly",
    metadata,
    sa.Column("hour", UTCDateTime(), primary_key=True),  # start of the UTC hour
    *_measures(),
    sa.Index("ix_analytics_hourly_metric_hour", "metric", "dimension", "hour"),
)

analytics_stage_entries = sa.Table(
    "analytics_stage_entries",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("stage", sa.String(16), primary_key=True),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),  # the event that recorded the entry
    sa.Column("source", sa.String(255)),  # the contact's first touchpoint (leads by source/UTM)
    sa.Column("medium", sa.String(255)),
    sa.Column("campaign", sa.String(255)),
    sa.Index("ix_analytics_stage_entries_stage_at", "stage", "entered_at"),
    sa.Index("ix_analytics_stage_entries_event", "event_id"),
)

analytics_marks = sa.Table(
    "analytics_marks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("mark", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)
