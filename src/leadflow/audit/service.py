"""Recording and reading the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import queries
from leadflow.kernel.clock import Clock


def record(
    conn: Connection,
    clock: Clock,
    *,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    data: dict[str, Any] | None = None,
) -> None:
    """Write one audit entry in the caller's transaction, so it exists exactly when the change does."""
    conn.execute(
        queries.INSERT,
        {
            "at": clock.now(),
            "actor": actor,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "data": data,
        },
    )


def record_many(
    conn: Connection,
    clock: Clock,
    *,
    actor: str,
    action: str,
    entity_type: str,
    items: list[tuple[str, dict[str, Any]]],
) -> None:
    """One entry per ``(entity_id, data)``, written in one batch."""
    if not items:
        return
    at = clock.now()
    conn.execute(
        queries.INSERT,
        [
            {
                "at": at,
                "actor": actor,
                "action": action,
                "entity_type": entity_type,
                "entity_id": eid,
                "data": data,
            }
            for eid, data in items
        ],
    )


def redact(conn: Connection, entity_type: str, entity_ids: Iterable[str]) -> int:
    """Drop the data of every entry about these entities (GDPR erasure); the entries themselves stay."""
    ids = list(entity_ids)
    if not ids:
        return 0
    return conn.execute(queries.redact(entity_type, ids)).rowcount


def redact_mentioning(conn: Connection, entity_type: str, key: str, values: Iterable[str]) -> int:
    """Drop the data of every ``entity_type`` entry whose ``data[key]`` is one of ``values`` (GDPR
    erasure of what is recorded by address, not by contact: an address suppressed before its person
    existed). One statement."""
    wanted = sorted(set(values))
    if not wanted:
        return 0
    return conn.execute(queries.redact_mentioning(entity_type, key, wanted)).rowcount


def entries(
    conn: Connection,
    *,
    entity_type: str | None = None,
    entity_ids: Iterable[str] | None = None,
    before_id: int | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first."""
    query = queries.entries(
        entity_type=entity_type,
        entity_ids=None if entity_ids is None else list(entity_ids),
        before_id=before_id,
        since=since,
        limit=limit,
    )
    return [dict(row._mapping) for row in conn.execute(query)]
