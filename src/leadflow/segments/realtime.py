"""Real-time membership: re-evaluate, for the contacts a unit of work touched, only the segments whose
dependencies meet what changed — one query per affected segment, never one per contact."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy.engine import Connection

from leadflow.segments import membership
from leadflow.segments.catalog import CATALOG
from leadflow.segments.compiler import Compiler
from leadflow.segments.deps import affected


def reevaluate(
    conn: Connection, signals: Mapping[str, set[str]], at: datetime, *, lowest_band: str
) -> list[membership.Change]:
    """``signals``: contact id → what changed for it (see :mod:`leadflow.segments.deps`)."""
    if not signals:
        return []
    changes: list[membership.Change] = []
    for definition in CATALOG.dynamic(conn):
        contact_ids = sorted(c for c, found in signals.items() if affected(definition.dependencies, found))
        if not contact_ids:
            continue
        query = Compiler(conn.dialect.name, at, lowest_band=lowest_band).select_ids(
            definition.rule, contact_ids
        )
        change = membership.reevaluate(conn, definition, query, contact_ids, at)
        if change.entered or change.exited:
            changes.append(change)
    return changes
