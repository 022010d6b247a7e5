"""Set-based recomputation: after rules change, and periodically as windows and decay move on.

Counters are rebuilt from the event log with one ``INSERT … SELECT … GROUP BY`` per rule; points and
totals are rebuilt from counters the same way; band crossings become events in one statement. Nothing
is loaded into Python per contact.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection

from leadflow.events import service as events
from leadflow.scoring import bands, definitions, queries
from leadflow.scoring.engine import BAND_CHANGED, RULES
from leadflow.segments.service import Compiler

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Rebuilt:
    rules: int
    contacts: int
    band_changes: int


def counters(conn: Connection, rule: definitions.Loaded, now: datetime) -> None:
    """A behavioural rule's counters, recounted from the event log."""
    assert rule.behaviour is not None
    conn.execute(queries.DELETE_RULE_COUNTERS, {"rule_id": rule.id})
    daily = Compiler(conn.dialect.name, now).daily_occurrences(rule.behaviour, rule.id)
    conn.execute(queries.recount(daily))


def rule_points(conn: Connection, rule: definitions.Loaded, now: datetime, decay: bands.Decay) -> None:
    conn.execute(queries.DELETE_RULE_POINTS, {"rule_id": rule.id})
    if rule.kind == "behavioral":
        found = queries.rule_points(conn.dialect.name, rule, now, decay)
        conn.execute(queries.behavioural_points(found, rule))
    else:
        matching = Compiler(conn.dialect.name, now, lowest_band="").select_ids(rule.condition)
        conn.execute(queries.condition_points(matching, rule))


def totals(conn: Connection, now: datetime) -> tuple[int, int]:
    """Every contact's total and band from its points; band crossings become events. (contacts, crossings)"""
    config = bands.bands(conn)
    dialect = conn.dialect.name
    table = queries.new_scores_table(f"score_new_{uuid.uuid4().hex[:12]}")
    table.create(conn)
    conn.execute(queries.fill_new_scores(table))
    crossing = queries.band_crossings(dialect, table, config, BAND_CHANGED, f":{uuid.uuid4().hex}", now)
    crossings = conn.execute(events.insert_internal(crossing, returning_ids=True)).all()
    conn.execute(queries.store_new_scores(dialect, table, config, now))
    count = int(conn.execute(queries.count_rows(table)).scalar_one())
    table.drop(conn)
    return count, len(crossings)


def everything(conn: Connection, now: datetime, progress: Progress | None = None) -> Rebuilt:
    """Recount, rescore and re-band every contact (after rules or decay change)."""
    note = progress or (lambda _: None)
    active = RULES.active(conn)
    for statement in queries.drop_inactive([rule.id for rule in active]):
        conn.execute(statement)
    decay = bands.decay(conn)
    for rule in active:
        note(f"rule {rule.name}")
        if rule.kind == "behavioral":
            counters(conn, rule, now)
        rule_points(conn, rule, now, decay)
    note("totals and bands")
    contacts, crossings = totals(conn, now)
    return Rebuilt(rules=len(active), contacts=contacts, band_changes=crossings)


def age(conn: Connection, now: datetime) -> Rebuilt:
    """The periodic pass: windows and decay move with time; rescore the rules they affect."""
    decay = bands.decay(conn)
    moving = [r for r in RULES.active(conn) if r.kind == "behavioral" and (r.window_seconds or decay.after)]
    for rule in moving:
        rule_points(conn, rule, now, decay)
    contacts, crossings = totals(conn, now) if moving else (0, 0)
    return Rebuilt(rules=len(moving), contacts=contacts, band_changes=crossings)
