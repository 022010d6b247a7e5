"""Published journey versions as parsed definitions, cached: a version never changes once published."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys import definitions, queries
from leadflow.kernel.context import AppContext, Slot


@dataclass(frozen=True)
class Published:
    journey_id: str
    key: str | None
    name: str
    version: int
    definition: definitions.Definition
    steps: dict[str, Any]

    @property
    def first(self) -> Any:
        return self.definition.steps[0]

    def step(self, step_id: str) -> Any:
        return self.steps[step_id]


class _Versions:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: dict[tuple[str, int], Published] = {}


_VERSIONS: Slot[_Versions] = Slot("journeys.versions", lambda _ctx: _Versions())


def _versions(ctx: AppContext) -> _Versions:
    return ctx.get(_VERSIONS)


def _published(row: Any) -> Published:
    definition = definitions.parse(row.definition)
    return Published(
        journey_id=row.journey_id,
        key=row.key,
        name=row.name,
        version=row.version,
        definition=definition,
        steps={step.id: step for step in definition.steps},
    )


def versions(
    conn: Connection, ctx: AppContext, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], Published]:
    """The published versions ``(journey_id, version)`` asked for, loaded once per process."""
    cache = _versions(ctx)
    with cache.lock:
        found = {key: cache.items[key] for key in wanted if key in cache.items}
    missing = wanted - set(found)
    if missing:
        loaded = {
            (row.journey_id, row.version): _published(row) for row in conn.execute(queries.versions(missing))
        }
        with cache.lock:
            cache.items.update(loaded)
        found.update(loaded)
    return found


def active(conn: Connection, ctx: AppContext) -> list[Published]:
    """The journeys contacts may enter now, each at its current version."""
    rows = conn.execute(queries.ACTIVE_VERSIONS).all()
    found = versions(conn, ctx, {(row.id, row.version) for row in rows})
    return [found[(row.id, row.version)] for row in rows if (row.id, row.version) in found]
