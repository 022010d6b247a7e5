"""What other domains and the API may do with scoring: the one module they import."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.kernel import config
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import copy_rows
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.scoring import bands, defaults, definitions, queries, rebuild
from leadflow.scoring.bands import Bands as Bands
from leadflow.scoring.bands import Decay as Decay
from leadflow.scoring.definitions import ScoringRule as ScoringRule
from leadflow.scoring.definitions import ScoringRuleCreate as ScoringRuleCreate
from leadflow.scoring.definitions import ScoringRuleFields as ScoringRuleFields
from leadflow.scoring.engine import BAND_CHANGED as BAND_CHANGED
from leadflow.scoring.queries import score_view as score_view
from leadflow.segments import service as segments

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
    row = conn.execute(queries.RULE, {"rule_id": rule_id}).first()
    if row is None:
        raise NotFound(f"no scoring rule {rule_id}", code="scoring_rule_not_found")
    return row


def _values(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    window = fields.get("window")
    return {
        "definition": definitions.definition_json(kind, fields),
        "event": fields.get("event") if kind == "behavioral" else None,
        "max_occurrences": fields.get("max_occurrences") if kind == "behavioral" else None,
        "window_seconds": int(segments.parse_duration(window).total_seconds()) if window else None,
    }


def request_recompute(conn: Connection, ctx: AppContext) -> None:
    """Rules changed: the worker recomputes every score (set-based) shortly. Each request is a new token,
    so a request made while a recompute runs is not mistaken for the one it answers."""
    config.put(conn, ctx.clock, RECOMPUTE_KEY, uuid.uuid4().hex)


def list_rules(ctx: AppContext) -> list[ScoringRule]:
    with ctx.db.read() as conn:
        return [definitions.view(row) for row in conn.execute(queries.RULES)]


def get_rule(ctx: AppContext, rule_id: str) -> ScoringRule:
    with ctx.db.read() as conn:
        return definitions.view(_row(conn, rule_id))


def create_rule(ctx: AppContext, data: ScoringRuleCreate, *, actor: str) -> ScoringRule:
    now = ctx.clock.now()
    rule_id = new_id()
    fields = data.model_dump(exclude_unset=True)
    with ctx.db.write() as conn:
        conn.execute(
            queries.INSERT_RULE,
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
            **_values(row.kind, merged),
        }
        conn.execute(queries.change_rule(rule_id, values))
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
        conn.execute(queries.DELETE_RULE, {"rule_id": rule_id})
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
        live = contacts.get(conn, contact_id).id
        score = conn.execute(queries.SCORE, {"contact_id": live}).first()
        rows = conn.execute(queries.RULE_SCORES, {"contact_id": live}).all()
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
        contacts.profile_lock(conn)
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
        contacts.profile_lock(conn)
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
    for loser, survivor in message.pairs:
        conn.execute(queries.move_counters(conn.dialect.name, loser, survivor))
        for statement in queries.FORGET:
            conn.execute(statement, {"contact_id": loser})


def on_contacts_erased(conn: Connection, message: Any) -> None:
    for statement in queries.forget_all(message.contact_ids):
        conn.execute(statement)


def export(conn: Connection, contact_ids: Sequence[str]) -> dict[str, Any]:
    """These contacts' scores and the points each rule gave them (GDPR export)."""
    totals, points = queries.export(contact_ids)
    return {
        "scores": [dict(row._mapping) for row in conn.execute(totals)],
        "score_points": [dict(row._mapping) for row in conn.execute(points)],
    }


def scores_of(conn: Connection, contact_ids: Sequence[str]) -> list[Any]:
    """``(contact_id, total, band)`` of those of ``contact_ids`` that have a score, in one query (an
    email's ``contact.score`` and ``score_band``)."""
    if not contact_ids:
        return []
    return list(conn.execute(queries.score_summaries(conn.dialect.name, contact_ids)))


def band_names(conn: Connection) -> list[str]:
    """The score bands' names, lowest first (a journey trigger's direction: up or down)."""
    return [band.name for band in bands.bands(conn).bands]


def copy_configuration(source: Connection, target: Connection) -> None:
    """Every scoring rule, into another database (the journey simulator's scratch copy; the bands
    travel with the configuration entries)."""
    copy_rows(source, target, queries.RULES_TABLE)


def lowest_band(conn: Connection) -> str:
    """The lowest band's name: the band of a contact without a score."""
    return bands.lowest(conn)
