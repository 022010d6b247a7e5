"""Every statement the scoring domain runs, except rule conditions (the segment compiler builds those).

Module-level statements take named parameters (``sa.bindparam``); functions build statements and never
touch a connection (``dialect`` is the dialect's name). :data:`SAMPLES` builds each function's
statement for the compile test.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Executable

from leadflow.kernel.db import Sample, insert_for, where_in_dialect
from leadflow.kernel.types import UTCDateTime
from leadflow.scoring.bands import Bands, Decay
from leadflow.scoring.definitions import EMAIL_PREFIX, Loaded
from leadflow.scoring.models import contact_scores, score_counters, score_points, scoring_rules
from leadflow.segments import service as segments

KINDS = ("behavioral", "demographic", "firmographic")
SCORE_PARTS = ("total", *KINDS, "engagement")

_r, _c, _p, _s = scoring_rules.c, score_counters.c, score_points.c, contact_scores.c


# ---- rules --------------------------------------------------------------------------------------------

#: The rules table (copied whole into the journey simulator's scratch database).
RULES_TABLE = scoring_rules
RULE = sa.select(scoring_rules).where(_r.id == sa.bindparam("rule_id"))
RULES = sa.select(scoring_rules).order_by(_r.created_at, _r.id)
INSERT_RULE = scoring_rules.insert()
DELETE_RULE = scoring_rules.delete().where(_r.id == sa.bindparam("rule_id"))
#: Revision stamps of the active rules (the rule cache reloads only what changed).
ACTIVE_STAMPS = sa.select(_r.id, _r.revision).where(_r.active.is_(True))


def change_rule(rule_id: str, values: dict[str, Any]) -> sa.Update:
    """A change to a rule: its revision goes up (cached forms of it are stale)."""
    return scoring_rules.update().where(_r.id == rule_id).values({**values, "revision": _r.revision + 1})


def rules_by_ids(rule_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(scoring_rules).where(_r.id.in_(list(rule_ids)))


# ---- a contact's score ----------------------------------------------------------------------------------

SCORE = sa.select(contact_scores).where(_s.contact_id == sa.bindparam("contact_id"))
#: What each rule gives a contact, with the rule's name and kind (a score's explanation).
RULE_SCORES = (
    sa.select(_p.rule_id, _r.name, _r.kind, _p.occurrences, _p.points)
    .join(scoring_rules, _r.id == _p.rule_id)
    .where(_p.contact_id == sa.bindparam("contact_id"))
    .order_by(_r.kind, _r.name)
)


def score_summaries(dialect: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    """``(contact_id, total, band)`` of those of ``contact_ids`` that have a score."""
    query = sa.select(_s.contact_id, _s.total, _s.band)
    found: sa.Select[Any] = where_in_dialect(dialect, query, _s.contact_id, contact_ids)
    return found


def score_view() -> sa.Select[Any]:
    """Every scored contact's ``(contact_id, total, band)``: the CRM joins its leads to it (a contact
    without a row has no score yet: total 0, the lowest band)."""
    return sa.select(_s.contact_id, _s.total, _s.band)


def export(contact_ids: Sequence[str]) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """These contacts' scores, and the points each rule gave them with the rule's name (GDPR export)."""
    ids = list(contact_ids)
    totals = sa.select(contact_scores).where(_s.contact_id.in_(ids))
    points = (
        sa.select(score_points, _r.name.label("rule"))
        .join(scoring_rules, _r.id == _p.rule_id)
        .where(_p.contact_id.in_(ids))
        .order_by(_p.contact_id, _p.rule_id)
    )
    return totals, points


# ---- merges and erasure ----------------------------------------------------------------------------------


def move_counters(dialect: str, loser: str, survivor: str) -> Any:
    """The loser's counters added to the survivor's (same rule and day: occurrences add up)."""
    moved = sa.select(sa.literal(survivor), _c.rule_id, _c.day, _c.occurrences).where(_c.contact_id == loser)
    statement = insert_for(dialect, score_counters).from_select(
        ["contact_id", "rule_id", "day", "occurrences"], moved
    )
    return statement.on_conflict_do_update(
        index_elements=["contact_id", "rule_id", "day"],
        set_={"occurrences": _c.occurrences + statement.excluded.occurrences},
    )


#: A contact's counters, points and total, deleted (after a merge moved what counts; erasure).
FORGET = tuple(
    table.delete().where(table.c.contact_id == sa.bindparam("contact_id"))
    for table in (score_counters, score_points, contact_scores)
)


def forget_all(contact_ids: Sequence[str]) -> list[sa.Delete]:
    """These contacts' counters, points and totals deleted (erasure)."""
    return [
        table.delete().where(table.c.contact_id.in_(list(contact_ids)))
        for table in (score_counters, score_points, contact_scores)
    ]


# ---- incremental scoring --------------------------------------------------------------------------------


def add_to_counters(dialect: str) -> Any:
    """Increment per-rule, per-day counters (executed with one row per increment)."""
    statement = insert_for(dialect, score_counters)
    return statement.on_conflict_do_update(
        index_elements=["contact_id", "rule_id", "day"],
        set_={"occurrences": _c.occurrences + statement.excluded.occurrences},
    )


def upsert_points(dialect: str) -> Any:
    """Set what a rule gives a contact (executed with one row per contact and rule)."""
    statement = insert_for(dialect, score_points)
    return statement.on_conflict_do_update(
        index_elements=["contact_id", "rule_id"],
        set_={"occurrences": statement.excluded.occurrences, "points": statement.excluded.points},
    )


def clear_points(rule_id: str, contact_ids: Sequence[str]) -> sa.Delete:
    return score_points.delete().where(_p.rule_id == rule_id, _p.contact_id.in_(list(contact_ids)))


def points_of(dialect: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    found: sa.Select[Any] = where_in_dialect(dialect, sa.select(score_points), _p.contact_id, contact_ids)
    return found


def scores_of(dialect: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    found: sa.Select[Any] = where_in_dialect(dialect, sa.select(contact_scores), _s.contact_id, contact_ids)
    return found


def upsert_scores(dialect: str) -> Any:
    """Set contacts' totals and bands (executed with one row per contact)."""
    statement = insert_for(dialect, contact_scores)
    columns = (*SCORE_PARTS, "band", "updated_at")
    return statement.on_conflict_do_update(
        index_elements=["contact_id"], set_={k: statement.excluded[k] for k in columns}
    )


# ---- points of a behavioural rule ----------------------------------------------------------------------


def window_start(rule: Loaded, now: datetime) -> date | None:
    if not rule.window_seconds:
        return None
    return (now - timedelta(days=math.ceil(rule.window_seconds / 86400) - 1)).date()


def decay_cutoff(decay: Decay, now: datetime) -> date | None:
    return (now - segments.parse_duration(decay.after)).date() if decay.after else None


def _least(dialect: str, *values: Any) -> Any:
    return (sa.func.least if dialect == "postgresql" else sa.func.min)(*values)


def _greatest(dialect: str, *values: Any) -> Any:
    return (sa.func.greatest if dialect == "postgresql" else sa.func.max)(*values)


def rule_points(
    dialect: str, rule: Loaded, now: datetime, decay: Decay, contact_ids: Sequence[str] | None = None
) -> sa.Select[Any]:
    """``(contact_id, occurrences, weighted)``: a behavioural rule's counted occurrences and their
    decayed weight, per contact, from its counters.

    A rule gives ``points`` per occurrence, newest first, up to ``max_occurrences``; with a window only
    occurrences since then count; with decay, occurrences older than the decay age count zero
    (``expire``) or half (``halve``). Counters are per UTC day, so windows and decay apply by whole days.
    """
    running = sa.func.sum(_c.occurrences).over(
        partition_by=_c.contact_id, order_by=_c.day.desc(), rows=(None, 0)
    )
    base = sa.select(_c.contact_id, _c.day, _c.occurrences, running.label("running")).where(
        _c.rule_id == rule.id
    )
    start = window_start(rule, now)
    if start is not None:
        base = base.where(_c.day >= start)
    if contact_ids is not None:
        base = where_in_dialect(dialect, base, _c.contact_id, contact_ids)
    days = base.subquery()
    counted: Any = days.c.occurrences
    if rule.max_occurrences is not None:
        left = _greatest(dialect, 0, rule.max_occurrences - (days.c.running - days.c.occurrences))
        counted = _least(dialect, days.c.occurrences, left)
    cutoff = decay_cutoff(decay, now)
    weight: Any = sa.literal(1.0)
    if cutoff is not None:
        weight = sa.case((days.c.day < cutoff, decay.weight), else_=1.0)
    return sa.select(
        days.c.contact_id,
        sa.func.sum(counted).label("occurrences"),
        sa.func.sum(counted * weight).label("weighted"),
    ).group_by(days.c.contact_id)


# ---- set-based rebuild ------------------------------------------------------------------------------------

DELETE_RULE_COUNTERS = score_counters.delete().where(_c.rule_id == sa.bindparam("rule_id"))
DELETE_RULE_POINTS = score_points.delete().where(_p.rule_id == sa.bindparam("rule_id"))


def drop_inactive(rule_ids: Sequence[str]) -> tuple[sa.Delete, sa.Delete]:
    """Counters and points of rules not among ``rule_ids`` (the active ones), deleted."""
    ids = list(rule_ids)
    return score_counters.delete().where(_c.rule_id.not_in(ids)), score_points.delete().where(
        _p.rule_id.not_in(ids)
    )


def recount(daily: sa.Select[Any]) -> sa.Insert:
    """A rule's counters from ``daily`` (``contact_id, rule_id, day, occurrences``)."""
    return score_counters.insert().from_select(["contact_id", "rule_id", "day", "occurrences"], daily)


def behavioural_points(found: sa.Select[Any], rule: Loaded) -> sa.Insert:
    """A behavioural rule's points for everyone, from :func:`rule_points`."""
    counted = found.subquery()
    select = sa.select(
        counted.c.contact_id, sa.literal(rule.id), counted.c.occurrences, counted.c.weighted * rule.points
    ).where(counted.c.occurrences > 0)
    return score_points.insert().from_select(["contact_id", "rule_id", "occurrences", "points"], select)


def condition_points(matching: sa.Select[Any], rule: Loaded) -> sa.Insert:
    """A demographic or firmographic rule's points for the contacts ``matching`` selects (``id``)."""
    matched = matching.subquery()
    select = sa.select(matched.c.id, sa.literal(rule.id), sa.literal(1), sa.literal(rule.points))
    return score_points.insert().from_select(["contact_id", "rule_id", "occurrences", "points"], select)


def band_of(config: Bands, total: Any) -> Any:
    """The band a total falls in, in SQL: the highest whose ``min`` it reaches."""
    whens = [(total >= band.min, band.name) for band in reversed(config.bands[1:]) if band.min is not None]
    return sa.case(*whens, else_=config.bands[0].name) if whens else sa.literal(config.bands[0].name)


def new_scores_table(name: str) -> sa.Table:
    """A temporary table of recomputed totals (dropped at commit on PostgreSQL)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("contact_id", sa.String(26), primary_key=True),
        *(sa.Column(part, sa.Float) for part in SCORE_PARTS),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )


def fill_new_scores(table: sa.Table) -> sa.Insert:
    """Every contact's total and parts from the active rules' points; contacts with a score and no
    points left get zeros."""

    def part(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, _p.points), else_=0.0))

    engaged = sa.and_(_r.kind == "behavioral", sa.func.substr(_r.event, 1, len(EMAIL_PREFIX)) == EMAIL_PREFIX)
    earned = (
        sa.select(
            _p.contact_id.label("contact_id"),
            sa.func.sum(_p.points).label("total"),
            part(_r.kind == "behavioral").label("behavioral"),
            part(_r.kind == "demographic").label("demographic"),
            part(_r.kind == "firmographic").label("firmographic"),
            part(engaged).label("engagement"),
        )
        .join(scoring_rules, _r.id == _p.rule_id)
        .where(_r.active.is_(True))
        .group_by(_p.contact_id)
    )
    emptied = sa.select(_s.contact_id, *(sa.literal(0.0) for _ in range(5))).where(
        _s.contact_id.not_in(
            sa.select(_p.contact_id).join(scoring_rules, _r.id == _p.rule_id).where(_r.active.is_(True))
        )
    )
    return table.insert().from_select(["contact_id", *SCORE_PARTS], sa.union_all(earned, emptied))


def _properties(dialect: str, old_band: Any, new_band: Any, total: Any) -> Any:
    if dialect == "postgresql":
        return sa.func.jsonb_build_object("from", old_band, "to", new_band, "score", total)
    return sa.func.json_object("from", old_band, "to", new_band, "score", total)


def band_crossings(
    dialect: str, table: sa.Table, config: Bands, name: str, message_suffix: str, now: datetime
) -> sa.Select[Any]:
    """One internal event per contact of ``table`` whose band changes: the rows
    :func:`leadflow.events.service.insert_internal` writes (message id ``band:<contact>:<suffix>``)."""
    new, lowest = table.c, config.bands[0].name
    old = contact_scores.alias("old")
    return (
        sa.select(
            sa.literal("band:") + new.contact_id + sa.literal(message_suffix),
            sa.literal("track"),
            sa.literal(name),
            new.contact_id,
            _properties(dialect, sa.func.coalesce(old.c.band, lowest), band_of(config, new.total), new.total),
            sa.bindparam(None, now, type_=UTCDateTime()),
            sa.bindparam(None, now, type_=UTCDateTime()),
            sa.literal("internal"),
        )
        .select_from(table.outerjoin(old, old.c.contact_id == new.contact_id))
        .where(sa.func.coalesce(old.c.band, lowest) != band_of(config, new.total))
    )


def store_new_scores(dialect: str, table: sa.Table, config: Bands, now: datetime) -> Any:
    """Totals and bands from ``table`` into ``contact_scores`` (inserted or replaced)."""
    new = table.c
    names = ["contact_id", *SCORE_PARTS]
    upsert = insert_for(dialect, contact_scores).from_select(
        [*names, "band", "updated_at"],
        sa.select(
            *(new[n] for n in names),
            band_of(config, new.total),
            sa.bindparam(None, now, type_=_s.updated_at.type),
        ).where(sa.true()),
    )
    columns = (*SCORE_PARTS, "band", "updated_at")
    return upsert.on_conflict_do_update(
        index_elements=["contact_id"], set_={k: upsert.excluded[k] for k in columns}
    )


def count_rows(table: sa.Table) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(table)


# ---- samples for the compile test --------------------------------------------------------------------------

_NOW = datetime(2026, 1, 1, tzinfo=UTC)
_DIALECTS = ("sqlite", "postgresql")
_BANDS = Bands.model_validate(
    {"bands": [{"name": "cold"}, {"name": "warm", "min": 50}, {"name": "hot", "min": 80}]}
)
_SAMPLE_RULE = Loaded(
    id="r",
    name="Visits",
    kind="behavioral",
    points=5.0,
    max_occurrences=3,
    window_seconds=86400 * 30,
    behaviour=None,
    condition=None,
    updated_at=_NOW,
)


def _for_each_dialect(build: Callable[[str], Any]) -> list[Executable]:
    return [build(dialect) for dialect in _DIALECTS]


def _upsert(build: Callable[[str], Any]) -> list[Executable]:
    """An upsert sample: the PostgreSQL form (it compiles on SQLite too; SQLite's does not on PostgreSQL)."""
    return [build("postgresql")]


SAMPLES: list[Sample] = [
    score_view,
    lambda: change_rule("r", {"name": "n", "points": 2.0}),
    lambda: rules_by_ids(["r"]),
    lambda: _for_each_dialect(lambda d: score_summaries(d, ["a", "b"])),
    lambda: export(["a"]),
    lambda: _upsert(lambda d: move_counters(d, "a", "b")),
    lambda: forget_all(["a"]),
    lambda: _upsert(add_to_counters),
    lambda: _upsert(upsert_points),
    lambda: clear_points("r", ["a"]),
    lambda: _for_each_dialect(lambda d: points_of(d, ["a"])),
    lambda: _for_each_dialect(lambda d: scores_of(d, ["a"])),
    lambda: _upsert(upsert_scores),
    lambda: _for_each_dialect(
        lambda d: rule_points(d, _SAMPLE_RULE, _NOW, Decay(after="90d", mode="halve"), ["a"])
    ),
    lambda: drop_inactive(["r"]),
    lambda: recount(sa.select(_c.contact_id, _c.rule_id, _c.day, _c.occurrences)),
    lambda: behavioural_points(rule_points("sqlite", _SAMPLE_RULE, _NOW, Decay()), _SAMPLE_RULE),
    lambda: condition_points(sa.select(_s.contact_id.label("id")), _SAMPLE_RULE),
    lambda: fill_new_scores(new_scores_table("score_new_sample")),
    lambda: _for_each_dialect(
        lambda d: band_crossings(d, new_scores_table("score_new_sample"), _BANDS, "b", ":x", _NOW)
    ),
    lambda: _upsert(lambda d: store_new_scores(d, new_scores_table("score_new_sample"), _BANDS, _NOW)),
    lambda: count_rows(new_scores_table("score_new_sample")),
]
