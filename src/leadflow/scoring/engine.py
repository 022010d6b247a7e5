"""Incremental scoring for the contacts one unit of work touched.

An event increments its rule's counter for that contact and day (one upsert, never a read of the event
history); the rule's points for that contact are then recomputed from its few counters. Demographic and
firmographic rules are re-checked for contacts whose profile or company changed. Totals and bands
follow; a band crossing is an internal ``leadflow.score_band_changed`` event. Machine-generated events
(scanner opens and clicks) never score.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.events import service as events
from leadflow.kernel.facts import EVERYTHING, ContactsTouched, TouchedEvent
from leadflow.scoring import bands, definitions, queries
from leadflow.scoring.queries import KINDS
from leadflow.segments.service import Compiler

BAND_CHANGED = "leadflow.score_band_changed"


class RuleCache:
    def __init__(self) -> None:
        self._loaded: dict[tuple[str, int], definitions.Loaded] = {}
        self._lock = threading.Lock()

    def active(self, conn: Connection) -> list[definitions.Loaded]:
        stamps = conn.execute(queries.ACTIVE_STAMPS).all()
        missing = [row.id for row in stamps if (row.id, row.revision) not in self._loaded]
        if missing:
            rows = conn.execute(queries.rules_by_ids(missing)).all()
            with self._lock:
                for row in rows:
                    self._loaded[(row.id, row.revision)] = definitions.load(row)
        with self._lock:
            return [self._loaded[(row.id, row.revision)] for row in stamps]


RULES = RuleCache()


def _machine(event: TouchedEvent) -> bool:
    return bool(event.properties and event.properties.get("machine_generated") is True)


def _candidate(rule: definitions.Loaded, event: TouchedEvent) -> bool:
    node = rule.behaviour
    assert node is not None
    if node.event is not None:
        return event.type == "track" and event.event == node.event
    return event.type == "page" and (node.page == "*" or event.name == node.page)


def _occurrences(
    conn: Connection, rule: definitions.Loaded, found: list[TouchedEvent], now: datetime
) -> list[TouchedEvent]:
    """Which candidate events meet the rule's property conditions (checked in SQL, one query)."""
    assert rule.behaviour is not None
    if not rule.behaviour.where or not found:
        return found
    query = Compiler(conn.dialect.name, now).select_event_ids(rule.behaviour, [ev.id for ev in found])
    matched = {row[0] for row in conn.execute(query)}
    return [ev for ev in found if ev.id in matched]


def count(
    conn: Connection, rules: list[definitions.Loaded], touched: Iterable[TouchedEvent], now: datetime
) -> dict[str, set[str]]:
    """Increment counters for the events that match behavioural rules; returns rule id → contacts."""
    human = [ev for ev in touched if not _machine(ev)]
    pairs: dict[str, set[str]] = defaultdict(set)
    increments: Counter[tuple[str, str, Any]] = Counter()
    for rule in rules:
        if rule.kind != "behavioral":
            continue
        for event in _occurrences(conn, rule, [ev for ev in human if _candidate(rule, ev)], now):
            increments[(event.contact_id, rule.id, event.timestamp.date())] += 1
            pairs[rule.id].add(event.contact_id)
    if increments:
        rows = [
            {"contact_id": c, "rule_id": r, "day": d, "occurrences": n} for (c, r, d), n in increments.items()
        ]
        conn.execute(queries.add_to_counters(conn.dialect.name), rows)
    return pairs


def _upsert_points(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(queries.upsert_points(conn.dialect.name), rows)


def _clear_points(conn: Connection, rule_id: str, contact_ids: Iterable[str]) -> None:
    ids = sorted(contact_ids)
    if ids:
        conn.execute(queries.clear_points(rule_id, ids))


def rescore(
    conn: Connection, rule: definitions.Loaded, contact_ids: set[str], now: datetime, decay: bands.Decay
) -> None:
    """Recompute one behavioural rule's points for these contacts from their counters."""
    results = conn.execute(
        queries.rule_points(conn.dialect.name, rule, now, decay, sorted(contact_ids))
    ).all()
    kept = [
        {
            "contact_id": row.contact_id,
            "rule_id": rule.id,
            "occurrences": int(row.occurrences),
            "points": float(row.weighted) * rule.points,
        }
        for row in results
        if row.occurrences
    ]
    _upsert_points(conn, kept)
    _clear_points(conn, rule.id, contact_ids - {row["contact_id"] for row in kept})


def match(conn: Connection, rule: definitions.Loaded, contact_ids: set[str], now: datetime) -> None:
    """A demographic or firmographic rule gives its points, once, to the contacts that meet it."""
    query = Compiler(conn.dialect.name, now, lowest_band="").select_ids(rule.condition, sorted(contact_ids))
    matched = {row[0] for row in conn.execute(query)}
    _upsert_points(
        conn,
        [
            {"contact_id": c, "rule_id": rule.id, "occurrences": 1, "points": rule.points}
            for c in sorted(matched)
        ],
    )
    _clear_points(conn, rule.id, contact_ids - matched)


def totals(
    conn: Connection, rules: list[definitions.Loaded], contact_ids: set[str], now: datetime
) -> set[str]:
    """Recompute totals and bands for these contacts; returns those whose score changed."""
    if not contact_ids:
        return set()
    by_id = {rule.id: rule for rule in rules}
    ids = sorted(contact_ids)
    sums: dict[str, dict[str, float]] = {c: dict.fromkeys((*KINDS, "engagement"), 0.0) for c in ids}
    rows = conn.execute(queries.points_of(conn.dialect.name, ids))
    for row in rows:
        rule = by_id.get(row.rule_id)
        if rule is not None:
            sums[row.contact_id][rule.kind] += row.points
            if rule.engagement:
                sums[row.contact_id]["engagement"] += row.points
    before = {row.contact_id: row for row in conn.execute(queries.scores_of(conn.dialect.name, ids))}
    config = bands.bands(conn)
    lowest = config.bands[0].name
    changed: list[dict[str, Any]] = []
    crossings: list[tuple[str, str, dict[str, Any], str]] = []
    for contact_id in ids:
        parts = sums[contact_id]
        total = parts["behavioral"] + parts["demographic"] + parts["firmographic"]
        score = {
            "contact_id": contact_id,
            "total": total,
            **parts,
            "band": config.band_for(total),
            "updated_at": now,
        }
        old = before.get(contact_id)
        if old is not None and all(
            getattr(old, k) == score[k] for k in ("total", *KINDS, "engagement", "band")
        ):
            continue
        if old is None and total == 0 and score["band"] == lowest:
            continue
        changed.append(score)
        previous = old.band if old is not None else lowest
        if previous != score["band"]:
            properties = {"from": previous, "to": score["band"], "score": total}
            crossings.append((contact_id, BAND_CHANGED, properties, f"band:{uuid.uuid4().hex}"))
    if changed:
        conn.execute(queries.upsert_scores(conn.dialect.name), changed)
    events.emit_many(conn, crossings, now)
    return {row["contact_id"] for row in changed}


def apply(
    conn: Connection, touched: ContactsTouched, now: datetime, *, company_peers: set[str] | None = None
) -> set[str]:
    """Score what a unit of work touched; returns the contacts whose score changed. ``company_peers``:
    contacts whose company changed (a ``group`` call by a colleague), re-checked by firmographic rules."""
    rules = RULES.active(conn)
    if not rules:
        return set()
    decay = bands.decay(conn)
    pairs = count(conn, rules, touched.events, now)
    renewed = {c for c, fields in touched.changes.items() if EVERYTHING in fields}
    renewed |= {survivor for _, survivor in touched.merged}
    profile = set(touched.changes) | {ev.contact_id for ev in touched.events if ev.type == "group"}
    profile |= company_peers or set()
    for rule in rules:
        if rule.kind == "behavioral":
            contacts = pairs.get(rule.id, set()) | renewed
            if contacts:
                rescore(conn, rule, contacts, now, decay)
        elif profile:
            match(conn, rule, profile, now)
    affected = {c for found in pairs.values() for c in found} | renewed | profile
    return totals(conn, rules, affected, now)
