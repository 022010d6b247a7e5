"""The pipeline stats' counters: per stage and UTC day, kept in the transaction of every deal change.

The stats (:mod:`leadflow.crm.deal_stats`) sum a few hundred counter rows instead of aggregating the
stage visits of tens of thousands of deals. Two tables (see :mod:`leadflow.crm.models`):

- ``crm_stage_days`` (stage, day of entry): ``reached`` — deals whose **first** entry into the stage
  fell on that day (a deal first reaches a stage once, so the sum over a range of days is the number of
  distinct deals that first reached it in the range); ``onward`` — those of them that have been in the
  next stage (position + 1 in the pipeline) at any time; ``visits`` entered that day, ``open_visits``
  of them still open, ``closed_seconds`` the time spent by the ended ones and ``open_entered`` the sum of
  the open ones' entry instants (Unix seconds), so the time in stage "until now" is computed when read.
- ``crm_stage_deal_days`` (stage, day of creation, currency): the deals created that day that are in
  the stage now, and their total value.

**How they are kept exact**: every write of deals or stage visits (:mod:`leadflow.crm.deals`: create,
move — a person's or a rule's —, value or currency change, delete) reads what the changed deals add to
the counters before (:func:`snapshot`, locking the deals on PostgreSQL) and after the change, and adds
the difference (:func:`record`: one upsert per table for the whole batch, rows in key order so two
writers never deadlock). What a deal adds depends on its own rows only, so the difference is exact
whatever the change. A change of a pipeline's stage order changes what "next stage" means: that
pipeline's counters are rebuilt in the same transaction (:func:`rebuild`).

:func:`rebuild` recomputes them from the deals and their visits, set-based (``leadflow crm stats
rebuild``; migration 0020 backfills them the same way). Rows that come down to zero stay (harmless).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.crm import queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunked

_REACHED, _ONWARD, _VISITS, _OPEN, _CLOSED, _ENTERED = range(6)


@dataclass(frozen=True)
class Snapshot:
    """Some deals' rows and their stage visits, as the counters see them."""

    deals: list[Any] = field(default_factory=list)
    visits: list[Any] = field(default_factory=list)


EMPTY = Snapshot()
#: Each stage's pipeline and the stage after it.
Nexts = dict[str, tuple[str, str | None]]


def day_of(at: datetime) -> date:
    """The UTC day of an instant (the counters' unit)."""
    return at.astimezone(UTC).date()


def snapshot(conn: Connection, deal_ids: Iterable[str], *, lock: bool = False) -> Snapshot:
    """The deals' rows and visits (``lock``: the deals locked first, in id order, on PostgreSQL)."""
    ids = sorted(set(deal_ids))
    found = Snapshot()
    for chunk in chunked(ids, 1000):
        found.deals.extend(conn.execute(queries.deal_rows(chunk, lock=lock)))
        found.visits.extend(conn.execute(queries.deal_visits(chunk)))
    return found


def _stages(conn: Connection) -> Nexts:
    """Each stage's pipeline and the stage after it (position + 1), if any."""
    rows = list(conn.execute(queries.ALL_STAGES))
    at = {(s.pipeline_id, s.position): s.id for s in rows}
    return {s.id: (s.pipeline_id, at.get((s.pipeline_id, s.position + 1))) for s in rows}


def _flow(visits: Sequence[Any], nexts: Nexts) -> dict[tuple[str, date], list[Any]]:
    """What these visits add to ``crm_stage_days``, per (stage, day)."""
    out: dict[tuple[str, date], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0.0, 0.0])
    by_deal: dict[str, list[Any]] = defaultdict(list)
    for visit in visits:
        by_deal[visit.deal_id].append(visit)
    for mine in by_deal.values():
        seen = {v.stage_id for v in mine}
        first: dict[str, datetime] = {}
        for v in mine:
            row = out[(v.stage_id, day_of(v.entered_at))]
            row[_VISITS] += 1
            if v.left_at is None:
                row[_OPEN] += 1
                row[_ENTERED] += v.entered_at.timestamp()
            else:
                row[_CLOSED] += (v.left_at - v.entered_at).total_seconds()
            if v.stage_id not in first or v.entered_at < first[v.stage_id]:
                first[v.stage_id] = v.entered_at
        for stage_id, at in first.items():
            row = out[(stage_id, day_of(at))]
            row[_REACHED] += 1
            row[_ONWARD] += 1 if nexts[stage_id][1] in seen else 0
    return out


def _deals(deals: Sequence[Any]) -> dict[tuple[str, date, str], list[Any]]:
    """What these deals add to ``crm_stage_deal_days``, per (stage, day of creation, currency)."""
    out: dict[tuple[str, date, str], list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for deal in deals:
        row = out[(deal.stage_id, day_of(deal.created_at), deal.currency)]
        row[0] += 1
        row[1] += Decimal(deal.value)
    return out


def _differences(before: dict[Any, list[Any]], after: dict[Any, list[Any]]) -> list[tuple[Any, list[Any]]]:
    changed = []
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        size = len(was or now or [])
        delta = [b - a for a, b in zip(was or [0] * size, now or [0] * size, strict=True)]
        if any(delta):
            changed.append((key, delta))
    return changed


def record(conn: Connection, before: Snapshot, after: Snapshot) -> None:
    """Add to the counters what changed between two snapshots of the same deals (one transaction)."""
    if not (before.deals or before.visits or after.deals or after.visits):
        return
    nexts = _stages(conn)
    flow = _differences(_flow(before.visits, nexts), _flow(after.visits, nexts))
    if flow:
        conn.execute(
            queries.upsert_flow(conn.dialect.name),
            [
                {"stage_id": stage_id, "day": day, "pipeline_id": nexts[stage_id][0]}
                | dict(zip(queries.FLOW_COUNTS, delta, strict=True))
                for (stage_id, day), delta in flow
            ],
        )
    money = _differences(_deals(before.deals), _deals(after.deals))
    if money:
        conn.execute(
            queries.upsert_deals(conn.dialect.name),
            [
                {
                    "stage_id": stage_id,
                    "day": day,
                    "currency": currency,
                    "pipeline_id": nexts[stage_id][0],
                    "deals": count,
                    "total": total,
                }
                for (stage_id, day, currency), (count, total) in money
            ],
        )


def next_stages(conn: Connection, pipeline_id: str) -> dict[str, str | None]:
    """A pipeline's stages and the one after each (what ``onward`` counts)."""
    return {stage: nxt for stage, (pipeline, nxt) in _stages(conn).items() if pipeline == pipeline_id}


def rebuild(conn: Connection, pipeline_id: str | None = None) -> None:
    """Recompute the counters (of one pipeline, or all) from the deals and their visits, set-based."""
    dialect = conn.dialect.name
    conn.execute(queries.clear_flow(pipeline_id))
    conn.execute(queries.fill_flow(dialect, pipeline_id))
    conn.execute(queries.clear_deals(pipeline_id))
    conn.execute(queries.fill_deals(dialect, pipeline_id))


def rebuild_in(ctx: AppContext, pipeline_id: str | None = None) -> None:
    """:func:`rebuild` in its own write transaction (``leadflow crm stats rebuild``; bulk loads)."""
    with ctx.db.write() as conn:
        rebuild(conn, pipeline_id)
