"""Dynamic segment definitions, parsed once and kept until they change, in dependency order."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.segments import queries, rules
from leadflow.segments.dependencies import Dependencies


@dataclass(frozen=True)
class Definition:
    id: str
    key: str | None
    name: str
    rule: Any
    dependencies: Dependencies
    revision: int


def order(definitions: list[Definition]) -> list[Definition]:
    """Segments that others refer to come first (the graph is acyclic: cycles are refused on save)."""
    by_id = {d.id: d for d in definitions}
    done: set[str] = set()
    ordered: list[Definition] = []

    def visit(definition: Definition) -> None:
        if definition.id in done:
            return
        done.add(definition.id)
        for ref in sorted(definition.dependencies.segments):
            if ref in by_id:
                visit(by_id[ref])
        ordered.append(definition)

    for definition in sorted(definitions, key=lambda d: d.id):
        visit(definition)
    return ordered


class Catalog:
    """A context's cache of definitions. Without a reliable change signal one small query per use tells
    which definitions changed; with one (``generation``), not even that."""

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, int], Definition] = {}
        self._lock = threading.Lock()
        self._current: tuple[int, list[Definition]] | None = None

    def dynamic(self, conn: Connection, generation: int | None = None) -> list[Definition]:
        current = self._current
        if generation is not None and current is not None and current[0] == generation:
            return current[1]
        found = self._load(conn)
        if generation is not None:
            self._current = (generation, found)
        return found

    def _load(self, conn: Connection) -> list[Definition]:
        stamps = conn.execute(queries.DYNAMIC_STAMPS).all()
        missing = [row.id for row in stamps if (row.id, row.revision) not in self._parsed]
        if missing:
            rows = conn.execute(queries.by_ids(missing)).all()
            with self._lock:
                for row in rows:
                    self._parsed[(row.id, row.revision)] = Definition(
                        id=row.id,
                        key=row.key,
                        name=row.name,
                        rule=rules.parse(row.rules),
                        dependencies=Dependencies.from_json(row.dependencies),
                        revision=row.revision,
                    )
        with self._lock:
            current = [self._parsed[(row.id, row.revision)] for row in stamps]
            if len(self._parsed) > 4 * len(current) + 64:
                self._parsed = {(d.id, d.revision): d for d in current}
        return order(current)
