"""What other domains and the API may do with scoring."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import queries as contact_queries
from leadflow.contacts.service import profile_lock
from leadflow.kernel import config
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import dialect_insert
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.scoring import bands, defaults, definitions, rebuild
from leadflow.scoring.definitions import ScoringRule, ScoringRuleCreate, ScoringRuleFields
from leadflow.scoring.models import contact_scores, score_counters, score_points, scoring_rules
from leadflow.segments import durations

RECOMPUTE_KEY = "scoring.recompute_requested_at"


class RuleScore(BaseModel):
    rule_id: str
    name: str
    kind: str
    occurrences: int
    points: float


class ScoreExplanation(BaseModel):
    contact_id: str
    score: float
    band: str
    breakdown: dict[str, float]
    rules: list[RuleScore]


def _row(conn: Connection, rule_id: str) -> Any:
    row = conn.execute(sa.select(scoring_rules).where(scoring_rules.c.id == rule_id)).first()
    if row is None:
        raise NotFound(f"no scoring rule {rule_id}", code="scoring_rule_not_found")
    return row


def _values(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    window = fields.get("window")
    return {
        "definition": definitions.definition_json(kind, fields),
        "event": fields.get("event") if kind == "behavioral" else None,
        "max_occurrences": fields.get("max_occurrences") if kind == "behavioral" else None,
        "window_seconds": int(durations.parse(window).total_seconds()) if window else None,
    }


def request_recompute(conn: Connection, ctx: AppContext) -> None:
    """Rules changed: the worker recomputes every score (set-based) shortly. Each request is a new token,
    so a request made while a recompute runs is not mistaken for the one it answers."""
    config.put(conn, ctx.clock, RECOMPUTE_KEY, uuid.uuid4().hex)


def list_rules(ctx: AppContext) -> list[ScoringRule]:
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(scoring_rules).order_by(scoring_rules.c.created_at, scoring_rules.c.id))
        return [definitions.view(row) for row in rows]


def get_rule(ctx: AppContext, rule_id: str) -> ScoringRule:
    with ctx.db.read() as conn:
        return definitions.view(_row(conn, rule_id))


def create_rule(ctx: AppContext, data: ScoringRuleCreate, *, actor: str) -> ScoringRule:
    now = ctx.clock.now()
    rule_id = new_id()
    fields = data.model_dump(exclude_unset=True)
    with ctx.db.write() as conn:
        conn.execute(
            scoring_rules.insert(),
            {
                "id": rule_id,
                "name": data.name,
                "kind": data.kind,
                "points": data.points,
                "active": data.active if data.active is not None else True,
                "created_at": now,
                "updated_at": now,
                **_values(data.kind, fields),
            },
        )
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="scoring_rule.created",
            entity_type="scoring_rule",
            entity_id=rule_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        request_recompute(conn, ctx)
        return definitions.view(_row(conn, rule_id))


def update_rule(ctx: AppContext, rule_id: str, data: ScoringRuleFields, *, actor: str) -> ScoringRule:
    given = data.model_dump(exclude_unset=True)
    with ctx.db.write() as conn:
        row = _row(conn, rule_id)
        current = definitions.view(row).model_dump(exclude_none=True)
        applicable = definitions.BEHAVIOURAL_FIELDS if row.kind == "behavioral" else {"conditions"}
        shared = {"name", "points", "active"}
        merged = {**{k: v for k, v in current.items() if k in applicable | shared}, **given}
        merged = {k: v for k, v in merged.items() if v is not None}
        try:
            definitions.check_shape(row.kind, merged)
        except ValueError as exc:
            raise Invalid(str(exc), code="invalid_scoring_rule") from None
        values = {
            "name": merged["name"],
            "points": merged["points"],
            "active": merged.get("active", True),
            "updated_at": ctx.clock.now(),
            "revision": scoring_rules.c.revision + 1,
            **_values(row.kind, merged),
        }
        conn.execute(scoring_rules.update().where(scoring_rules.c.id == rule_id).values(values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="scoring_rule.updated",
            entity_type="scoring_rule",
            entity_id=rule_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        request_recompute(conn, ctx)
        return definitions.view(_row(conn, rule_id))


def delete_rule(ctx: AppContext, rule_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        row = _row(conn, rule_id)
        conn.execute(scoring_rules.delete().where(scoring_rules.c.id == rule_id))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="scoring_rule.deleted",
            entity_type="scoring_rule",
            entity_id=rule_id,
            data={"name": row.name},
        )
        request_recompute(conn, ctx)


def explain(ctx: AppContext, contact_id: str) -> ScoreExplanation:
    """A contact's score, its breakdown, and what each rule contributes (occurrences counted, points)."""
    with ctx.db.read() as conn:
        live = contact_queries.get(conn, contact_id).id
        score = conn.execute(sa.select(contact_scores).where(contact_scores.c.contact_id == live)).first()
        rows = conn.execute(
            sa.select(
                score_points.c.rule_id,
                scoring_rules.c.name,
                scoring_rules.c.kind,
                score_points.c.occurrences,
                score_points.c.points,
            )
            .join(scoring_rules, scoring_rules.c.id == score_points.c.rule_id)
            .where(score_points.c.contact_id == live)
            .order_by(scoring_rules.c.kind, scoring_rules.c.name)
        ).all()
        lowest = bands.lowest(conn)
    breakdown = {
        k: float(getattr(score, k)) if score else 0.0
        for k in ("behavioral", "demographic", "firmographic", "engagement")
    }
    return ScoreExplanation(
        contact_id=live,
        score=float(score.total) if score else 0.0,
        band=score.band if score else lowest,
        breakdown=breakdown,
        rules=[
            RuleScore(rule_id=r.rule_id, name=r.name, kind=r.kind, occurrences=r.occurrences, points=r.points)
            for r in rows
        ],
    )


def recompute(ctx: AppContext, progress: Callable[[str], None] | None = None) -> rebuild.Rebuilt:
    """Set-based recompute of every score, holding the profile lock (it serialises with processing)."""
    with ctx.db.write() as conn:
        profile_lock(conn)
        requested = config.get(conn, RECOMPUTE_KEY)
        result = rebuild.everything(conn, ctx.clock.now(), progress)
        if config.get(conn, RECOMPUTE_KEY) == requested:
            config.delete(conn, RECOMPUTE_KEY)
    ctx.signals.announce("events")
    return result


def recompute_if_requested(ctx: AppContext) -> rebuild.Rebuilt | None:
    with ctx.db.read() as conn:
        requested = config.get(conn, RECOMPUTE_KEY)
    return recompute(ctx) if requested else None


def age(ctx: AppContext) -> rebuild.Rebuilt:
    with ctx.db.write() as conn:
        profile_lock(conn)
        result = rebuild.age(conn, ctx.clock.now())
    ctx.signals.announce("events")
    return result


def get_bands(ctx: AppContext) -> bands.Bands:
    with ctx.db.read() as conn:
        return bands.bands(conn)


def set_bands(ctx: AppContext, value: bands.Bands, *, actor: str) -> bands.Bands:
    with ctx.db.write() as conn:
        bands.save_bands(conn, ctx.clock, value)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="scoring.bands_changed",
            entity_type="config",
            entity_id=bands.BANDS_KEY,
            data=value.model_dump(),
        )
        request_recompute(conn, ctx)
    return value


def get_decay(ctx: AppContext) -> bands.Decay:
    with ctx.db.read() as conn:
        return bands.decay(conn)


def set_decay(ctx: AppContext, value: bands.Decay, *, actor: str) -> bands.Decay:
    with ctx.db.write() as conn:
        bands.save_decay(conn, ctx.clock, value)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="scoring.decay_changed",
            entity_type="config",
            entity_id=bands.DECAY_KEY,
            data=value.model_dump(),
        )
        request_recompute(conn, ctx)
    return value


def install_defaults(ctx: AppContext, name: str, *, actor: str) -> list[ScoringRule]:
    """Install a shipped rule set (rules whose name exists are kept as they are) and its bands."""
    if name not in defaults.SETS:
        raise Invalid(f"unknown rule set {name!r}; use {', '.join(defaults.SETS)}", code="unknown_rule_set")
    rule_set, set_bands_value = defaults.SETS[name]
    existing = {rule.name for rule in list_rules(ctx)}
    created = [
        create_rule(ctx, ScoringRuleCreate.model_validate(spec), actor=actor)
        for spec in rule_set
        if spec["name"] not in existing
    ]
    set_bands(ctx, set_bands_value, actor=actor)
    return created


def on_contacts_merged(conn: Connection, message: Any) -> None:
    """Counters add up on the survivor; its points and total are recomputed by the qualifiers."""
    c = score_counters
    for loser, survivor in message.pairs:
        moved = sa.select(sa.literal(survivor), c.c.rule_id, c.c.day, c.c.occurrences).where(
            c.c.contact_id == loser
        )
        statement = dialect_insert(conn, c).from_select(
            ["contact_id", "rule_id", "day", "occurrences"], moved
        )
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["contact_id", "rule_id", "day"],
                set_={"occurrences": c.c.occurrences + statement.excluded.occurrences},
            )
        )
        for table in (score_counters, score_points, contact_scores):
            conn.execute(table.delete().where(table.c.contact_id == loser))


def on_contacts_erased(conn: Connection, message: Any) -> None:
    for table in (score_counters, score_points, contact_scores):
        conn.execute(table.delete().where(table.c.contact_id.in_(list(message.contact_ids))))


def export(conn: Connection, contact_ids: Sequence[str]) -> dict[str, Any]:
    """These contacts' scores and the points each rule gave them (GDPR export)."""
    ids = list(contact_ids)
    totals = sa.select(contact_scores).where(contact_scores.c.contact_id.in_(ids))
    points = (
        sa.select(score_points, scoring_rules.c.name.label("rule"))
        .join(scoring_rules, scoring_rules.c.id == score_points.c.rule_id)
        .where(score_points.c.contact_id.in_(ids))
        .order_by(score_points.c.contact_id, score_points.c.rule_id)
    )
    return {
        "scores": [dict(row._mapping) for row in conn.execute(totals)],
        "score_points": [dict(row._mapping) for row in conn.execute(points)],
    }
