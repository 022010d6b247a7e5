"""The delivery log of an endpoint and its statistics.

Each delivery keeps its last attempt: the request (our headers, which hold no secret — a signature
cannot be turned back into its key —, and the body, rebuilt from the stored event and payload exactly as
sent) and the answer (status, a subset of headers, the body's first 4 KB). The statistics count an
endpoint's deliveries created in a window by status; the success rate is delivered / (delivered +
failed); latencies are the nearest-rank p50 and p99 of the last attempts' durations, read by the
database (one ``ORDER BY … OFFSET`` row each), not sorted in Python.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.webhooks import endpoints, queries
from leadflow.webhooks.outbox import DELIVERED, FAILED, STATUSES


def detail(row: Any) -> dict[str, Any]:
    """A delivery as the log shows it: its state, the request and the response."""
    return {
        "id": row.id,
        "endpoint_id": row.endpoint_id,
        "event": row.event,
        "status": row.status,
        "attempts": row.attempts,
        "due_at": row.due_at,
        "created_at": row.created_at,
        "delivered_at": row.delivered_at,
        "error": row.error,
        "replay_of": row.replay_of,
        "contact_id": row.contact_id,
        "request": {
            "url": row.url,
            "headers": row.request_headers,
            "body": {"type": row.event, "timestamp": row.created_at, "data": row.payload},
        },
        "response": {
            "status": row.response_code,
            "headers": row.response_headers,
            "body": row.response_body,
            "duration_ms": row.duration_ms,
        },
    }


def get(ctx: AppContext, delivery_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        row = conn.execute(queries.delivery(delivery_id)).first()
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found", code="delivery_not_found")
    return detail(row)


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", code="invalid_status")


def of_endpoint(
    ctx: AppContext, endpoint_id: str, *, status: str | None, after: str | None, limit: int
) -> list[dict[str, Any]]:
    """The endpoint's deliveries, newest first, optionally of one status, older than the id ``after``."""
    _check_status(status)
    with ctx.db.read() as conn:
        endpoints.exists(conn, endpoint_id)
        rows = conn.execute(queries.endpoint_deliveries(endpoint_id, status, after, limit))
        return [detail(row) for row in rows]


def _percentile(conn: Connection, endpoint_id: str, since: datetime, count: int, share: float) -> int | None:
    if count == 0:
        return None
    rank = max(0, math.ceil(share * count) - 1)
    value = conn.execute(queries.nth_duration(endpoint_id, since, rank)).scalar()
    return int(value) if value is not None else None


def stats(ctx: AppContext, endpoint_id: str, *, window: timedelta) -> dict[str, Any]:
    """Counts by status, success rate and latency p50/p99 of the deliveries created in ``window``."""
    if window <= timedelta(0):
        raise Invalid("the window must be positive", code="invalid_window")
    now = ctx.clock.now()
    since = now - window
    with ctx.db.read() as conn:
        endpoints.exists(conn, endpoint_id)
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(
            {row[0]: int(row[1]) for row in conn.execute(queries.status_counts(endpoint_id, since))}
        )
        timed = int(conn.execute(queries.timed_count(endpoint_id, since)).scalar() or 0)
        p50 = _percentile(conn, endpoint_id, since, timed, 0.5)
        p99 = _percentile(conn, endpoint_id, since, timed, 0.99)
    settled = counts[DELIVERED] + counts[FAILED]
    return {
        "endpoint_id": endpoint_id,
        "since": since,
        "until": now,
        "counts": counts,
        "total": sum(counts.values()),
        "success_rate": counts[DELIVERED] / settled if settled else None,
        "latency_ms": {"p50": p50, "p99": p99, "measured": timed},
    }
