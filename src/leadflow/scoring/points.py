"""Points of a behavioural rule from its counters, in SQL.

A rule gives ``points`` per occurrence, newest first, up to ``max_occurrences``; with a window only
occurrences since then count; with decay, occurrences older than the decay age count zero (``expire``)
or half (``halve``). Counters are per UTC day, so windows and decay apply by whole days.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import where_in
from leadflow.scoring.bands import Decay
from leadflow.scoring.definitions import Loaded
from leadflow.scoring.models import score_counters
from leadflow.segments import durations


def window_start(rule: Loaded, now: datetime) -> date | None:
    if not rule.window_seconds:
        return None
    return (now - timedelta(days=math.ceil(rule.window_seconds / 86400) - 1)).date()


def decay_cutoff(decay: Decay, now: datetime) -> date | None:
    return (now - durations.parse(decay.after)).date() if decay.after else None


def _least(conn: Connection, *values: Any) -> Any:
    return (sa.func.least if conn.dialect.name == "postgresql" else sa.func.min)(*values)


def _greatest(conn: Connection, *values: Any) -> Any:
    return (sa.func.greatest if conn.dialect.name == "postgresql" else sa.func.max)(*values)


def query(
    conn: Connection, rule: Loaded, now: datetime, decay: Decay, contact_ids: Sequence[str] | None = None
) -> sa.Select[Any]:
    """``(contact_id, occurrences, weighted)``: counted occurrences and their decayed weight, per contact."""
    c = score_counters.c
    running = sa.func.sum(c.occurrences).over(
        partition_by=c.contact_id, order_by=c.day.desc(), rows=(None, 0)
    )
    base = sa.select(c.contact_id, c.day, c.occurrences, running.label("running")).where(c.rule_id == rule.id)
    start = window_start(rule, now)
    if start is not None:
        base = base.where(c.day >= start)
    if contact_ids is not None:
        base = where_in(conn, base, c.contact_id, contact_ids)
    days = base.subquery()
    counted: Any = days.c.occurrences
    if rule.max_occurrences is not None:
        left = _greatest(conn, 0, rule.max_occurrences - (days.c.running - days.c.occurrences))
        counted = _least(conn, days.c.occurrences, left)
    cutoff = decay_cutoff(decay, now)
    weight: Any = sa.literal(1.0)
    if cutoff is not None:
        weight = sa.case((days.c.day < cutoff, decay.weight), else_=1.0)
    return sa.select(
        days.c.contact_id,
        sa.func.sum(counted).label("occurrences"),
        sa.func.sum(counted * weight).label("weighted"),
    ).group_by(days.c.contact_id)
