"""Reading the event log and sending events straight to the write path in tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadflow.events import ingest, schemas
from leadflow.events.models import events
from leadflow.kernel.context import AppContext


def send(ctx: AppContext, *messages: dict[str, Any]) -> int:
    """Validate and store messages exactly as ``/v1/batch`` would; returns how many were new."""
    rows = schemas.batch_rows({"batch": list(messages)}, ctx.clock.now())
    return ingest.store(ctx.db, ctx.signals, ctx.metrics, rows)


def stored(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(events).order_by(events.c.id))]


def count(ctx: AppContext) -> int:
    return len(stored(ctx))
