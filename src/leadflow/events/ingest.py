"""The write path of the tracking API: validated rows become durable events in one transaction.

Nothing else happens in the request. A repeated ``messageId`` (in the same request, in a retry, or in
a concurrent copy) is stored once: the unique index decides, so two copies racing on two connections
cannot both land. On PostgreSQL the rows travel as one JSON document expanded by ``json_to_recordset``:
one short statement the server prepares once, and no per-value work in Python.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from leadflow.events import queries
from leadflow.kernel.db import Database
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
        kinds = queries.insert_tracked(conn, fresh)
    stored = Counter(kinds)
    if stored:
        signals.announce(CHANNEL)
    for kind, count in stored.items():
        metrics.events_ingested.labels(type=kind).inc(count)
    duplicates = len(rows) - len(kinds)
    if duplicates:
        metrics.events_duplicate.inc(duplicates)
    return len(kinds)
