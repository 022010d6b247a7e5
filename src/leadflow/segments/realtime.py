"""Real-time membership: re-evaluate, for the contacts a unit of work touched, only the segments whose
dependencies meet what changed.

Each segment's rule is compiled once into a statement whose instant and contact list are parameters;
all the segments a unit of work affects are evaluated together in one ``UNION ALL`` round trip, their
locks taken in one statement and their current members read in one more.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext, Slot
from leadflow.segments import membership, queries
from leadflow.segments.catalog import Catalog, Definition
from leadflow.segments.compiler import Compiler
from leadflow.segments.dependencies import affected


@dataclass(frozen=True)
class Prepared:
    query: sa.Select[Any]
    compiler: Compiler
    restrict_key: str
    minute: datetime | None


class Statements:
    """Compiled statements per (dialect, segment version, lowest band); rebuilt only when a rule changes
    (or, for ``anniversary_today`` rules, when the minute changes)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str, int, str], Prepared] = {}
        self._lock = threading.Lock()

    def get(self, dialect: str, definition: Definition, lowest_band: str, at: datetime) -> Prepared:
        key = (dialect, definition.id, definition.revision, lowest_band)
        with self._lock:
            found = self._cache.get(key)
        minute = at.replace(second=0, microsecond=0)
        if found is not None and (found.minute is None or found.minute == minute):
            return found
        prefix = f"s{len(self._cache)}x{abs(hash(key)) % 100000}"
        compiler = Compiler(dialect, at, lowest_band=lowest_band, prefix=prefix)
        restrict_key = f"{prefix}_ids"
        matching = compiler.select_ids(definition.rule, [], restrict_key=restrict_key)
        query = queries.evaluation(definition.id, matching)
        prepared = Prepared(query, compiler, restrict_key, minute if compiler.dated else None)
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = prepared
        return prepared


_CATALOG: Slot[Catalog] = Slot("segments.catalog", lambda _ctx: Catalog())
_STATEMENTS: Slot[Statements] = Slot("segments.statements", lambda _ctx: Statements())


def caches(ctx: AppContext) -> tuple[Catalog, Statements]:
    return ctx.get(_CATALOG), ctx.get(_STATEMENTS)


def reevaluate(
    conn: Connection, ctx: AppContext, signals: Mapping[str, set[str]], at: datetime, *, lowest_band: str
) -> list[membership.Change]:
    """``signals``: contact id → what changed for it (see :mod:`leadflow.segments.dependencies`)."""
    if not signals:
        return []
    catalog, statements = caches(ctx)
    generation = ctx.signals.generation("segments") if ctx.signals.reliable() else None
    plan: list[tuple[Definition, list[str]]] = []
    for definition in catalog.dynamic(conn, generation):
        contact_ids = sorted(c for c, found in signals.items() if affected(definition.dependencies, found))
        if contact_ids:
            plan.append((definition, contact_ids))
    if not plan:
        return []
    membership.lock_all(conn, [definition.id for definition, _ in plan])
    parts, params = [], {}
    for definition, contact_ids in plan:
        prepared = statements.get(conn.dialect.name, definition, lowest_band, at)
        parts.append(prepared.query)
        params.update(prepared.compiler.params(at))
        params[prepared.restrict_key] = contact_ids
    everyone = sorted({c for _, ids in plan for c in ids})
    parts.append(queries.current_members(conn.dialect.name, [d.id for d, _ in plan], everyone))
    now_in: set[tuple[str, str]] = set()
    was_in: set[tuple[str, str]] = set()
    for segment_id, contact_id, now in conn.execute(queries.all_of(parts), params):
        (now_in if now else was_in).add((segment_id, contact_id))
    changes = []
    for definition, contact_ids in plan:
        here = {c for c in contact_ids if (definition.id, c) in now_in}
        before = {c for c in contact_ids if (definition.id, c) in was_in}
        entered, exited = sorted(here - before), sorted(before - here)
        if entered or exited:
            membership.apply(conn, definition, entered, exited, at)
            changes.append(membership.Change(definition.id, len(entered), len(exited), -1))
    return changes
