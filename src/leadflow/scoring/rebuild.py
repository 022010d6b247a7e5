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
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.events.models import events
from leadflow.kernel.db import dialect_insert
from leadflow.scoring import bands, definitions, points
from leadflow.scoring.engine import BAND_CHANGED, RULES
from leadflow.scoring.models import contact_scores, score_counters, score_points, scoring_rules
from leadflow.segments.compiler import Compiler

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Rebuilt:
    rules: int
    contacts: int
    band_changes: int


def _day(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", column), sa.Date)
    return sa.func.date(column)


def counters(conn: Connection, rule: definitions.Loaded, now: datetime) -> None:
    """A behavioural rule's counters, recounted from the event log."""
    assert rule.behaviour is not None
    conn.execute(score_counters.delete().where(score_counters.c.rule_id == rule.id))
    e = events.alias()
    compiler = Compiler(conn.dialect.name, now)
    day = _day(conn, e.c.timestamp)
    tally = (
        sa.select(e.c.contact_id, sa.literal(rule.id), day, sa.func.count())
        .where(e.c.contact_id.is_not(None), *compiler.event_filter(e, rule.behaviour), compiler.human(e))
        .group_by(e.c.contact_id, day)
    )
    conn.execute(score_counters.insert().from_select(["contact_id", "rule_id", "day", "occurrences"], tally))


def rule_points(conn: Connection, rule: definitions.Loaded, now: datetime, decay: bands.Decay) -> None:
    conn.execute(score_points.delete().where(score_points.c.rule_id == rule.id))
    if rule.kind == "behavioral":
        found = points.query(conn, rule, now, decay).subquery()
        select = sa.select(
            found.c.contact_id, sa.literal(rule.id), found.c.occurrences, found.c.weighted * rule.points
        ).where(found.c.occurrences > 0)
    else:
        matched = Compiler(conn.dialect.name, now, lowest_band="").select_ids(rule.condition).subquery()
        select = sa.select(matched.c.id, sa.literal(rule.id), sa.literal(1), sa.literal(rule.points))
    conn.execute(
        score_points.insert().from_select(["contact_id", "rule_id", "occurrences", "points"], select)
    )


def _band(config: bands.Bands, total: Any) -> Any:
    whens = [(total >= band.min, band.name) for band in reversed(config.bands[1:]) if band.min is not None]
    return sa.case(*whens, else_=config.bands[0].name) if whens else sa.literal(config.bands[0].name)


def totals(conn: Connection, now: datetime) -> tuple[int, int]:
    """Every contact's total and band from its points; band crossings become events. (contacts, crossings)"""
    config = bands.bands(conn)
    lowest = config.bands[0].name
    p, r = score_points.c, scoring_rules.c
    prefix = definitions.EMAIL_PREFIX
    engaged = sa.and_(r.kind == "behavioral", sa.func.substr(r.event, 1, len(prefix)) == prefix)

    def part(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, p.points), else_=0.0))

    earned = (
        sa.select(
            p.contact_id.label("contact_id"),
            sa.func.sum(p.points).label("total"),
            part(r.kind == "behavioral").label("behavioral"),
            part(r.kind == "demographic").label("demographic"),
            part(r.kind == "firmographic").label("firmographic"),
            part(engaged).label("engagement"),
        )
        .join(scoring_rules, r.id == p.rule_id)
        .where(r.active.is_(True))
        .group_by(p.contact_id)
    )
    emptied = sa.select(contact_scores.c.contact_id, *(sa.literal(0.0) for _ in range(5))).where(
        contact_scores.c.contact_id.not_in(
            sa.select(p.contact_id).join(scoring_rules, r.id == p.rule_id).where(r.active.is_(True))
        )
    )
    table = sa.Table(
        f"score_new_{uuid.uuid4().hex[:12]}",
        sa.MetaData(),
        sa.Column("contact_id", sa.String(26), primary_key=True),
        *(
            sa.Column(name, sa.Float)
            for name in ("total", "behavioral", "demographic", "firmographic", "engagement")
        ),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    table.create(conn)
    names = ["contact_id", "total", "behavioral", "demographic", "firmographic", "engagement"]
    conn.execute(table.insert().from_select(names, sa.union_all(earned, emptied)))
    new = table.c
    old = contact_scores.alias("old")
    crossing = (
        sa.select(
            sa.literal("band:") + new.contact_id + sa.literal(f":{uuid.uuid4().hex}"),
            sa.literal("track"),
            sa.literal(BAND_CHANGED),
            new.contact_id,
            _properties(conn, sa.func.coalesce(old.c.band, lowest), _band(config, new.total), new.total),
            sa.bindparam(None, now, type_=events.c.timestamp.type),
            sa.bindparam(None, now, type_=events.c.timestamp.type),
            sa.literal("internal"),
        )
        .select_from(table.outerjoin(old, old.c.contact_id == new.contact_id))
        .where(sa.func.coalesce(old.c.band, lowest) != _band(config, new.total))
    )
    crossings = conn.execute(
        events.insert()
        .from_select(
            ["message_id", "type", "event", "contact_id", "properties", "timestamp", "received_at", "source"],
            crossing,
        )
        .returning(events.c.id)
    ).all()
    upsert = dialect_insert(conn, contact_scores).from_select(
        [*names, "band", "updated_at"],
        sa.select(
            *(new[n] for n in names),
            _band(config, new.total),
            sa.bindparam(None, now, type_=contact_scores.c.updated_at.type),
        ).where(sa.true()),
    )
    columns = ("total", "behavioral", "demographic", "firmographic", "engagement", "band", "updated_at")
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=["contact_id"], set_={k: upsert.excluded[k] for k in columns}
        )
    )
    count = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    table.drop(conn)
    return count, len(crossings)


def _properties(conn: Connection, old_band: Any, new_band: Any, total: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.func.jsonb_build_object("from", old_band, "to", new_band, "score", total)
    return sa.func.json_object("from", old_band, "to", new_band, "score", total)


def everything(conn: Connection, now: datetime, progress: Progress | None = None) -> Rebuilt:
    """Recount, rescore and re-band every contact (after rules or decay change)."""
    note = progress or (lambda _: None)
    active = RULES.active(conn)
    ids = [rule.id for rule in active]
    conn.execute(score_counters.delete().where(score_counters.c.rule_id.not_in(ids)))
    conn.execute(score_points.delete().where(score_points.c.rule_id.not_in(ids)))
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
