"""The write path of the tracking API: validated rows become durable events in one transaction.

Nothing else happens in the request. A repeated ``messageId`` (in the same request, in a retry, or in
a concurrent copy) is stored once: the unique index decides, so two copies racing on two connections
cannot both land.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from leadflow.events.models import events
from leadflow.kernel.db import Database, insert_ignore
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.signals import Signals

CHANNEL = "events"


def store(db: Database, signals: Signals, metrics: Metrics, rows: list[dict[str, Any]]) -> int:
    """Commit ``rows``; returns how many were new. Returns only after the commit."""
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["message_id"], row)
    fresh = list(unique.values())
    with db.write() as conn:
        result = conn.execute(insert_ignore(conn, events, ["message_id"]).returning(events.c.type), fresh)
        stored = Counter(kind for (kind,) in result)
        if stored:
            signals.publish(conn, CHANNEL)
    if stored:
        signals.wake(CHANNEL)
    for kind, count in stored.items():
        metrics.events_ingested.labels(type=kind).inc(count)
    duplicates = len(rows) - sum(stored.values())
    if duplicates:
        metrics.events_duplicate.inc(duplicates)
    return sum(stored.values())
