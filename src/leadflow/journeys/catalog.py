"""Published journey versions as parsed definitions, cached: a version never changes once published."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.journeys import definitions
from leadflow.journeys.models import journey_versions, journeys
from leadflow.kernel.context import AppContext

CACHE = "journeys.versions"


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


def _versions(ctx: AppContext) -> _Versions:
    cache: _Versions = ctx.caches.setdefault(CACHE, _Versions())
    return cache


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


def _query() -> sa.Select[Any]:
    return sa.select(
        journey_versions.c.journey_id,
        journey_versions.c.version,
        journey_versions.c.definition,
        journeys.c.key,
        journeys.c.name,
    ).join(journeys, journeys.c.id == journey_versions.c.journey_id)


def versions(
    conn: Connection, ctx: AppContext, wanted: set[tuple[str, int]]
) -> dict[tuple[str, int], Published]:
    """The published versions ``(journey_id, version)`` asked for, loaded once per process."""
    cache = _versions(ctx)
    with cache.lock:
        found = {key: cache.items[key] for key in wanted if key in cache.items}
    missing = wanted - set(found)
    if missing:
        condition = sa.or_(
            *(
                sa.and_(journey_versions.c.journey_id == j, journey_versions.c.version == v)
                for j, v in missing
            )
        )
        loaded = {
            (row.journey_id, row.version): _published(row) for row in conn.execute(_query().where(condition))
        }
        with cache.lock:
            cache.items.update(loaded)
        found.update(loaded)
    return found


def active(conn: Connection, ctx: AppContext) -> list[Published]:
    """The journeys contacts may enter now, each at its current version."""
    rows = conn.execute(
        sa.select(journeys.c.id, journeys.c.version).where(
            journeys.c.status == "active", journeys.c.version.is_not(None)
        )
    ).all()
    found = versions(conn, ctx, {(row.id, row.version) for row in rows})
    return [found[(row.id, row.version)] for row in rows if (row.id, row.version) in found]
