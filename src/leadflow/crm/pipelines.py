"""Sales pipelines: ordered stages, each with a win probability (0-100) and a kind (``open``, ``won``,
``lost``), and the pipeline's stage-progression rules.

A pipeline has at least one open stage and at least one ``won`` and one ``lost`` stage; stage names
are unique within it. Its stages are edited as a whole list: a stage given with its ``id`` is kept
(renamed, re-ordered, re-weighted), one without is new, and one left out is deleted — unless a deal
is in it or has been in it (409 ``stage_in_use``: its time-in-stage history would lose its meaning).
A pipeline with deals cannot be deleted (409 ``pipeline_in_use``). One pipeline is the default (the
one deals go to when none is named); marking another default unmarks it.

**Progression rules** (``[{"event", "stage", "reason"?, "create"?}]``): a tracked event named
``event`` about a contact moves the contact's open deals in this pipeline to ``stage`` — only forward
(see :mod:`leadflow.crm.deals`). ``reason`` is required when ``stage`` is won or lost. ``create``
(default false) opens a deal at that stage when the contact has no open deal in the pipeline.

The default course-sales pipeline (made by migration 0013, and by :func:`ensure_default` on start if
there is no pipeline at all) is ``interest → consultation booked → proposal → won / lost`` with the
rules ``consultation_scheduled → consultation booked`` and ``Order Completed → won`` (reason
``paid``), both creating a deal when the person has none: a booked consultation or a payment is a
sale the team must see even if nobody opened a deal by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import queries, stage_counters
from leadflow.crm.models import crm_pipelines, crm_stages
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import copy_rows
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id

StageKind = Literal["open", "won", "lost"]
ENTITY = "crm_pipeline"
DEFAULT_NAME = "Course sales"
DEFAULT_STAGES: tuple[dict[str, Any], ...] = (
    {"name": "interest", "probability": 10, "kind": "open"},
    {"name": "consultation booked", "probability": 40, "kind": "open"},
    {"name": "proposal", "probability": 70, "kind": "open"},
    {"name": "won", "probability": 100, "kind": "won"},
    {"name": "lost", "probability": 0, "kind": "lost"},
)
DEFAULT_RULES: list[dict[str, Any]] = [
    {"event": "consultation_scheduled", "stage": "consultation booked", "create": True},
    {"event": "Order Completed", "stage": "won", "reason": "paid", "create": True},
]


class StageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, max_length=26, description="an existing stage's id (kept)")
    name: str = Field(min_length=1, max_length=100)
    probability: int = Field(ge=0, le=100, description="win probability, percent")
    kind: StageKind = "open"
    position: int | None = Field(
        default=None, ge=0, le=10_000, description="ignored: the list's order is the order"
    )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    event: str = Field(min_length=1, max_length=200, description="a tracked event's name")
    stage: str = Field(min_length=1, max_length=100, description="the stage name deals move to")
    reason: str | None = Field(default=None, max_length=500, description="required for won/lost stages")
    create: bool = Field(default=False, description="open a deal when the contact has no open one")


class PipelineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    is_default: bool = False
    stages: list[StageIn] = Field(min_length=3, max_length=50, description="in order")
    rules: list[Rule] = Field(default_factory=list, max_length=100)


class Stage(BaseModel):
    id: str
    name: str
    position: int
    probability: int
    kind: StageKind


class Pipeline(BaseModel):
    id: str
    name: str
    is_default: bool
    stages: list[Stage]
    rules: list[Rule]
    created_at: datetime
    updated_at: datetime


def _check(data: PipelineIn) -> None:
    names = [stage.name.strip() for stage in data.stages]
    if len(set(names)) != len(names):
        raise Invalid("stage names must be unique in a pipeline", code="duplicate_stage")
    kinds = [stage.kind for stage in data.stages]
    if not {"open", "won", "lost"} <= set(kinds):
        raise Invalid("a pipeline needs open, won and lost stages", code="invalid_stages")
    for rule in data.rules:
        if rule.stage not in names:
            raise Invalid(f"rule stage {rule.stage!r} is not a stage", code="invalid_rule")
        closing = kinds[names.index(rule.stage)] != "open"
        if closing and not (rule.reason and rule.reason.strip()):
            raise Invalid(f"a rule to {rule.stage!r} needs a reason", code="reason_required")


def row(conn: Connection, pipeline_id: str) -> Any:
    found = conn.execute(queries.PIPELINE, {"pipeline_id": pipeline_id}).first()
    if found is None:
        raise NotFound(f"no pipeline {pipeline_id}", code="pipeline_not_found")
    return found


def stages(conn: Connection, pipeline_id: str) -> list[Stage]:
    return [
        Stage.model_validate(s, from_attributes=True)
        for s in conn.execute(queries.STAGES, {"pipeline_id": pipeline_id})
    ]


def read(conn: Connection, pipeline_id: str) -> Pipeline:
    found = row(conn, pipeline_id)
    return Pipeline(
        id=found.id,
        name=found.name,
        is_default=found.is_default,
        stages=stages(conn, pipeline_id),
        rules=[Rule.model_validate(r) for r in found.rules or []],
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def default_id(conn: Connection) -> str:
    found = conn.execute(queries.DEFAULT_PIPELINE).first()
    if found is None:
        raise Invalid("no default pipeline; name one", code="pipeline_required")
    return str(found.id)


def _name_free(conn: Connection, name: str, pipeline_id: str | None) -> None:
    holder = conn.execute(queries.PIPELINE_NAMED, {"name": name}).scalar()
    if holder is not None and holder != pipeline_id:
        raise Conflict(f"a pipeline named {name!r} exists", code="pipeline_name_taken")


def _write_stages(conn: Connection, pipeline_id: str, given: list[StageIn]) -> None:
    """Keep, add and delete stages so the pipeline has exactly ``given``, in that order."""
    existing = {s.id: s for s in stages(conn, pipeline_id)}
    kept = {s.id for s in given if s.id is not None}
    unknown = kept - set(existing)
    if unknown:
        raise Invalid(f"no stage {sorted(unknown)[0]} in this pipeline", code="stage_not_found")
    gone = [{"stage": stage_id} for stage_id in existing if stage_id not in kept]
    for stage in gone:
        if conn.execute(queries.STAGE_IN_USE, stage).scalar():
            raise Conflict(f"stage {existing[stage['stage']].name!r} has deals", code="stage_in_use")
    if gone:
        conn.execute(queries.DELETE_STAGE, gone)
    # kept stages take a temporary unique name first, so swapped names never collide
    rows = [
        {
            "stage": s.id or new_id(),
            "name": s.name.strip(),
            "position": n,
            "probability": s.probability,
            "kind": s.kind,
        }
        for n, s in enumerate(given)
    ]
    updates = [r for r, s in zip(rows, given, strict=True) if s.id is not None]
    if updates:
        renamed = [{**r, "name": f"~moving~{r['stage']}"} for r in updates]
        conn.execute(queries.UPDATE_STAGE, renamed)
        conn.execute(queries.UPDATE_STAGE, updates)
    inserts = [
        {
            "id": r["stage"],
            "pipeline_id": pipeline_id,
            **{k: r[k] for k in ("name", "position", "probability", "kind")},
        }
        for r, s in zip(rows, given, strict=True)
        if s.id is None
    ]
    if inserts:
        conn.execute(queries.INSERT_STAGE, inserts)


def _audit(conn: Connection, ctx: AppContext, actor: str, action: str, pipeline_id: str, data: Any) -> None:
    audit.record(
        conn, ctx.clock, actor=actor, action=action, entity_type=ENTITY, entity_id=pipeline_id, data=data
    )


def create(ctx: AppContext, data: PipelineIn, *, actor: str) -> Pipeline:
    _check(data)
    now, pipeline_id, name = ctx.clock.now(), new_id(), data.name.strip()
    with ctx.db.write() as conn:
        _name_free(conn, name, None)
        conn.execute(
            queries.INSERT_PIPELINE,
            {
                "id": pipeline_id,
                "name": name,
                "is_default": data.is_default,
                "rules": [r.model_dump(exclude_none=True) for r in data.rules],
                "created_at": now,
                "updated_at": now,
            },
        )
        if data.is_default:
            conn.execute(queries.UNSET_DEFAULT, {"pipeline_id": pipeline_id})
        _write_stages(conn, pipeline_id, [s.model_copy(update={"id": None}) for s in data.stages])
        _audit(conn, ctx, actor, "crm.pipeline_created", pipeline_id, data.model_dump(mode="json"))
        return read(conn, pipeline_id)


def update(ctx: AppContext, pipeline_id: str, data: PipelineIn, *, actor: str) -> Pipeline:
    """Replace a pipeline's name, default flag, stages (see the module) and rules."""
    _check(data)
    now, name = ctx.clock.now(), data.name.strip()
    with ctx.db.write() as conn:
        row(conn, pipeline_id)
        _name_free(conn, name, pipeline_id)
        order = stage_counters.next_stages(conn, pipeline_id)
        _write_stages(conn, pipeline_id, data.stages)
        if stage_counters.next_stages(conn, pipeline_id) != order:  # "next stage" moved: recount onward
            stage_counters.rebuild(conn, pipeline_id)
        values = {
            "name": name,
            "is_default": data.is_default,
            "rules": [r.model_dump(exclude_none=True) for r in data.rules],
            "updated_at": now,
        }
        conn.execute(queries.change_pipeline(pipeline_id, values))
        if data.is_default:
            conn.execute(queries.UNSET_DEFAULT, {"pipeline_id": pipeline_id})
        _audit(conn, ctx, actor, "crm.pipeline_updated", pipeline_id, data.model_dump(mode="json"))
        return read(conn, pipeline_id)


def delete(ctx: AppContext, pipeline_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        row(conn, pipeline_id)
        if conn.execute(queries.PIPELINE_IN_USE, {"pipeline_id": pipeline_id}).scalar():
            raise Conflict("the pipeline has deals", code="pipeline_in_use")
        conn.execute(queries.DELETE_STAGE_OF, {"pipeline_id": pipeline_id})
        conn.execute(queries.DELETE_PIPELINE, {"pipeline_id": pipeline_id})
        _audit(conn, ctx, actor, "crm.pipeline_deleted", pipeline_id, {})


def get(ctx: AppContext, pipeline_id: str) -> Pipeline:
    with ctx.db.read() as conn:
        return read(conn, pipeline_id)


def listing(ctx: AppContext) -> list[Pipeline]:
    """Every pipeline by name (a business has a handful), with stages: two queries."""
    with ctx.db.read() as conn:
        found = list(conn.execute(queries.PIPELINES))
        by_pipeline: dict[str, list[Stage]] = {}
        for s in conn.execute(queries.ALL_STAGES):
            by_pipeline.setdefault(s.pipeline_id, []).append(Stage.model_validate(s, from_attributes=True))
    return [
        Pipeline(
            id=p.id,
            name=p.name,
            is_default=p.is_default,
            stages=by_pipeline.get(p.id, []),
            rules=[Rule.model_validate(r) for r in p.rules or []],
            created_at=p.created_at,
            updated_at=p.updated_at,
        )
        for p in found
    ]


def ensure_default_in(ctx: AppContext) -> None:
    """:func:`ensure_default` in its own transaction (the app calls it on start)."""
    with ctx.db.write() as conn:
        ensure_default(conn, ctx.clock.now())


def ensure_default(conn: Connection, now: datetime) -> None:
    """Make the course-sales pipeline when there is no pipeline at all (idempotent; on start). A
    business that deleted it but keeps other pipelines does not get it back."""
    if conn.execute(queries.ANY_PIPELINE).first() is not None:
        return
    pipeline_id = new_id()
    taken = conn.execute(queries.PIPELINE_NAMED, {"name": DEFAULT_NAME}).first() is not None
    conn.execute(
        queries.INSERT_PIPELINE,
        {
            "id": pipeline_id,
            "name": f"{DEFAULT_NAME} {pipeline_id}" if taken else DEFAULT_NAME,
            "is_default": True,
            "rules": DEFAULT_RULES,
            "created_at": now,
            "updated_at": now,
        },
    )
    conn.execute(
        queries.INSERT_STAGE,
        [
            {"id": new_id(), "pipeline_id": pipeline_id, "position": n, **s}
            for n, s in enumerate(DEFAULT_STAGES)
        ],
    )


def find(conn: Connection, ref: str | None) -> str:
    """The id of the pipeline with this id or name, or of the default pipeline when ``ref`` is None
    (422 ``pipeline_not_found`` / ``pipeline_required``): how automations name a pipeline."""
    if ref is None:
        return default_id(conn)
    if conn.execute(queries.PIPELINE, {"pipeline_id": ref}).first() is not None:
        return ref
    named = conn.execute(queries.PIPELINE_NAMED, {"name": ref.strip()}).scalar()
    if named is None:
        raise Invalid(f"no pipeline {ref!r}", code="pipeline_not_found")
    return str(named)


def copy_configuration(source: Connection, target: Connection) -> None:
    """The pipelines and their stages, into a scratch database (the journey simulator), so deal steps
    run there as they would here."""
    copy_rows(source, target, crm_pipelines)
    copy_rows(source, target, crm_stages)
