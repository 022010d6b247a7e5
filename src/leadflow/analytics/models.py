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
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

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

# --- alerts and scheduled digests (migration 0021) ----------------------------------------------------

alert_rules = sa.Table(
    "alert_rules",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("metric", sa.String(32), nullable=False),  # leadflow.analytics.alerts.METRICS
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("user_ids", json_type(), nullable=False),  # CRM users emailed on open and resolve
    sa.Column("webhook", sa.Boolean, nullable=False),  # alert.opened / alert.resolved to endpoints
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

alert_incidents = sa.Table(
    "alert_incidents",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("rule_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),  # '' or the connector / endpoint concerned
    # "<rule>|<subject>" while open, NULL once resolved: at most one open incident per rule and subject
    sa.Column("open_key", sa.String(300), unique=True),
    sa.Column("opened_at", UTCDateTime(), nullable=False),
    sa.Column("opened_value", sa.Float, nullable=False),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Column("resolved_value", sa.Float),
    sa.Index("ix_alert_incidents_rule_opened", "rule_id", "opened_at"),
)

report_digests = sa.Table(
    "report_digests",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("user_ids", json_type(), nullable=False),
    sa.Column("cron", sa.String(100), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("next_at", UTCDateTime(), nullable=False),  # the next due time (UTC)
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_report_digests_due", "enabled", "next_at"),
)

report_digest_sends = sa.Table(
    "report_digest_sends",
    metadata,
    sa.Column("digest_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("due_at", UTCDateTime(), primary_key=True),  # the period: one send per due time
    sa.Column("sent_at", UTCDateTime(), nullable=False),
    sa.Column("recipients", sa.Integer, nullable=False),
)
