"""The write path of the tracking API: validated rows become durable events in one transaction.

Nothing else happens in the request. A repeated ``messageId`` (in the same request, in a retry, or in
a concurrent copy) is stored once: the unique index decides, so two copies racing on two connections
cannot both land. On PostgreSQL the rows travel as one JSON document expanded by ``json_to_recordset``:
one short statement the server prepares once, and no per-value work in Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.events.models import events
from leadflow.kernel import jsonutil
from leadflow.kernel.db import Database, insert_ignore
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.signals import Signals

CHANNEL = "events"

_TEXT = (
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "contact_id",
    "source",
)
_JSON = ("properties", "traits", "context", "integrations")
_TIME = ("timestamp", "received_at")
_COLUMNS = _TEXT + _JSON + _TIME
_RECORD = ", ".join(
    [f"{name} varchar" for name in _TEXT]
    + [f"{name} jsonb" for name in _JSON]
    + [f"{name} timestamptz" for name in _TIME]
)
_POSTGRES_INSERT = (
    f"INSERT INTO events ({', '.join(_COLUMNS)}) "
    f"SELECT {', '.join(_COLUMNS)} FROM json_to_recordset(%s::json) AS r({_RECORD}) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING type"
)


def _postgres_insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[str]:
    """The whole batch as one JSON document, expanded into rows by the server."""
    document = jsonutil.dumps([{name: row.get(name) for name in _COLUMNS} for row in rows])
    return [kind for (kind,) in conn.exec_driver_sql(_POSTGRES_INSERT, (document,))]


def _generic_insert(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[str]:
    full = [{name: row.get(name) for name in _COLUMNS} for row in rows]
    return [
        kind
        for (kind,) in conn.execute(
            insert_ignore(conn, events, ["message_id"]).returning(events.c.type), full
        )
    ]


def store(db: Database, signals: Signals, metrics: Metrics, rows: list[dict[str, Any]]) -> int:
    """Commit ``rows``; returns how many were new. Returns only after the commit."""
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["message_id"], row)
    fresh = list(unique.values())
    with db.write() as conn:
        kinds = (
            _postgres_insert(conn, fresh)
            if conn.dialect.name == "postgresql"
            else _generic_insert(conn, fresh)
        )
    stored = Counter(kinds)
    if stored:
        signals.announce(CHANNEL)
    for kind, count in stored.items():
        metrics.events_ingested.labels(type=kind).inc(count)
    duplicates = len(rows) - len(kinds)
    if duplicates:
        metrics.events_duplicate.inc(duplicates)
    return len(kinds)
