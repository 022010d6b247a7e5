"""What the API, the CLI and other domains may do with journeys.

Status: ``draft`` → (publish) ``active`` ⇄ ``paused``; any → ``archived``. Publishing freezes the
working copy as a new version; contacts already inside continue on the version they entered. Editing an
active journey publishes at once. Pausing holds every pending step (``held``); resuming releases them,
and steps that fell due meanwhile run at once. Archiving ends every run (``journey archived``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.journeys import definitions, runs
from leadflow.journeys.models import journey_runs, journey_steps, journey_versions, journeys
from leadflow.journeys.schemas import (
    Journey,
    JourneyCreate,
    JourneyMetrics,
    JourneyPatch,
    Run,
    StepMetrics,
    StepRecord,
)
from leadflow.kernel import netguard
from leadflow.kernel.brand import require_postal_address
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.messaging.delivery import outbox
from leadflow.segments import service as segments


def validate(data: Any) -> definitions.Definition:
    """A definition, or :class:`Invalid` (``invalid_journey``) listing each problem with its place."""
    try:
        return definitions.parse(data)
    except ValidationError as exc:
        problems = [
            {
                "path": ".".join(str(p) for p in error["loc"]),
                "message": error["msg"].removeprefix("Value error, "),
            }
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        raise Invalid(summary, code="invalid_journey", details=problems) from None
    except Invalid as exc:
        raise Invalid(exc.message, code="invalid_journey", details=exc.details) from None


def check_webhook_targets(ctx: AppContext, definition: definitions.Definition) -> None:
    """A ``webhook`` step may not name an internal address by itself (``127.0.0.1``, ``127.1``,
    ``[::1]``, ``localhost``, ``169.254.169.254``, ``10.0.0.1``... see :mod:`leadflow.kernel.netguard`)
    unless ``LEADFLOW_NETWORK_ALLOW`` admits it: ``422 invalid_journey`` with each step's place, nothing
    stored. A name that only resolves inside the network is refused when the webhook is sent."""
    problems = [
        {"path": f"steps.{index}.url", "message": reason}
        for index, step in enumerate(definition.steps)
        if isinstance(step, definitions.Webhook) and (reason := netguard.refusal(step.url, ctx.settings))
    ]
    if problems:
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        raise Invalid(summary, code="invalid_journey", details=problems)


def check_references(conn: Connection, definition: definitions.Definition) -> None:
    """Publishing needs every email template and segment the journey names to exist."""
    templates = definition.templates()
    missing = sorted(templates - set(outbox.template_ids(conn, sorted(templates))))
    if missing:
        raise Invalid(f"email templates not found: {', '.join(missing)}", code="unknown_template")
    unknown = sorted(s for s in definition.segments() if segments.resolve(conn, s) is None)
    if unknown:
        raise Invalid(f"segments not found: {', '.join(unknown)}", code="unknown_segment")


def _row(conn: Connection, journey_id: str, *, lock: bool = False) -> Any:
    query = sa.select(journeys).where(sa.or_(journeys.c.id == journey_id, journeys.c.key == journey_id))
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"journey {journey_id} not found", code="journey_not_found")
    return row


def _view(row: Any) -> Journey:
    return Journey(**{name: row._mapping[name] for name in Journey.model_fields})


def create(ctx: AppContext, data: JourneyCreate, *, actor: str) -> Journey:
    definition = validate(data.definition)
    check_webhook_targets(ctx, definition)
    now = ctx.clock.now()
    journey_id = new_id()
    with ctx.db.write() as conn:
        if data.key and conn.execute(sa.select(journeys.c.id).where(journeys.c.key == data.key)).first():
            raise Conflict(f"a journey with key {data.key} exists", code="journey_exists")
        conn.execute(
            journeys.insert().values(
                id=journey_id,
                key=data.key,
                name=definition.name,
                description=definition.description,
                status="draft",
                definition=data.definition,
                created_at=now,
                updated_at=now,
            )
        )
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="journey.created",
            entity_type="journey",
            entity_id=journey_id,
        )
        return _view(_row(conn, journey_id))


def get(ctx: AppContext, journey_id: str) -> Journey:
    with ctx.db.read() as conn:
        return _view(_row(conn, journey_id))


def listing(ctx: AppContext, *, status: str | None, after: str | None, limit: int) -> list[Journey]:
    query = sa.select(journeys).order_by(journeys.c.id).limit(limit)
    if status:
        query = query.where(journeys.c.status == status)
    if after:
        query = query.where(journeys.c.id > after)
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(query)]


def update(ctx: AppContext, journey_id: str, data: JourneyPatch, *, actor: str) -> Journey:
    definition = validate(data.definition)
    check_webhook_targets(ctx, definition)
    with ctx.db.write() as conn:
        row = _row(conn, journey_id, lock=True)
        if row.status == "archived":
            raise Conflict("an archived journey cannot be edited", code="journey_archived")
        values = {
            "definition": data.definition,
            "name": definition.name,
            "description": definition.description,
            "revision": row.revision + 1,
            "updated_at": ctx.clock.now(),
        }
        conn.execute(journeys.update().where(journeys.c.id == row.id).values(**values))
        audit.record(
            conn, ctx.clock, actor=actor, action="journey.updated", entity_type="journey", entity_id=row.id
        )
        if row.status in ("active", "paused"):
            _publish(conn, ctx, row.id, definition, data.definition, actor)
        return _view(_row(conn, row.id))


def publish(ctx: AppContext, journey_id: str, *, actor: str, sending: bool = True) -> Journey:
    """Freeze the working copy as the next version; a draft becomes active. A journey that sends
    marketing email needs the sender's postal address (``422 missing_postal_address``), unless it will
    never really send (``sending=False``: the simulator's scratch copy)."""
    with ctx.db.write() as conn:
        row = _row(conn, journey_id, lock=True)
        if row.status == "archived":
            raise Conflict("an archived journey cannot be published", code="journey_archived")
        _publish(conn, ctx, row.id, validate(row.definition), row.definition, actor, sending=sending)
        return _view(_row(conn, row.id))


def _publish(
    conn: Connection,
    ctx: AppContext,
    journey_id: str,
    definition: definitions.Definition,
    raw: Any,
    actor: str,
    *,
    sending: bool = True,
) -> None:
    check_references(conn, definition)
    if sending and definition.sends_marketing():
        require_postal_address(ctx.settings, "a marketing journey (one that sends marketing email)")
    now = ctx.clock.now()
    current = conn.execute(
        sa.select(sa.func.max(journey_versions.c.version)).where(journey_versions.c.journey_id == journey_id)
    ).scalar()
    version = (current or 0) + 1
    conn.execute(
        journey_versions.insert().values(
            journey_id=journey_id, version=version, definition=raw, published_at=now, published_by=actor[:64]
        )
    )
    status = conn.execute(sa.select(journeys.c.status).where(journeys.c.id == journey_id)).scalar_one()
    conn.execute(
        journeys.update()
        .where(journeys.c.id == journey_id)
        .values(
            version=version,
            status="active" if status == "draft" else status,
            published_at=now,
            next_fire_at=None,
            updated_at=now,
        )
    )
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action="journey.published",
        entity_type="journey",
        entity_id=journey_id,
        data={"version": version},
    )


def _set_status(
    ctx: AppContext, journey_id: str, wanted: str, allowed: Sequence[str], *, actor: str
) -> Journey:
    with ctx.db.write() as conn:
        row = _row(conn, journey_id, lock=True)
        if row.status not in allowed:
            raise Conflict(f"a {row.status} journey cannot be {wanted}", code="journey_status")
        now = ctx.clock.now()
        conn.execute(journeys.update().where(journeys.c.id == row.id).values(status=wanted, updated_at=now))
        audit.record(
            conn, ctx.clock, actor=actor, action=f"journey.{wanted}", entity_type="journey", entity_id=row.id
        )
    with ctx.db.write() as conn:  # a second transaction: see claim() in runs.py for why
        _move_steps(conn, ctx, row.id, wanted, now)
        return _view(_row(conn, row.id))


def _move_steps(conn: Connection, ctx: AppContext, journey_id: str, status: str, now: Any) -> None:
    steps = journey_steps.update().where(journey_steps.c.journey_id == journey_id)
    if status == "paused":
        conn.execute(steps.where(journey_steps.c.status == "pending").values(status="held"))
    elif status == "active":
        conn.execute(steps.where(journey_steps.c.status == "held").values(status="pending"))
        on_commit(conn, lambda: ctx.signals.announce(runs.CHANNEL))
    elif status == "archived":
        conn.execute(
            steps.where(journey_steps.c.status.in_(("pending", "held"))).values(
                status="cancelled", finished_at=now, error="journey archived"
            )
        )
        conn.execute(
            journey_runs.update()
            .where(journey_runs.c.journey_id == journey_id, journey_runs.c.status == "active")
            .values(status="exited", ended_at=now, exit_reason="journey archived", active_key=None)
        )


def pause(ctx: AppContext, journey_id: str, *, actor: str) -> Journey:
    return _set_status(ctx, journey_id, "paused", ("active",), actor=actor)


def resume(ctx: AppContext, journey_id: str, *, actor: str) -> Journey:
    return _set_status(ctx, journey_id, "active", ("paused",), actor=actor)


def archive(ctx: AppContext, journey_id: str, *, actor: str) -> Journey:
    return _set_status(ctx, journey_id, "archived", ("draft", "active", "paused"), actor=actor)


def delete(ctx: AppContext, journey_id: str, *, actor: str) -> None:
    """Only a journey never published can be deleted; others are archived (their history stays)."""
    with ctx.db.write() as conn:
        row = _row(conn, journey_id, lock=True)
        if row.version is not None:
            raise Conflict(
                "a published journey keeps its history: archive it instead", code="journey_published"
            )
        conn.execute(journeys.delete().where(journeys.c.id == row.id))
        audit.record(
            conn, ctx.clock, actor=actor, action="journey.deleted", entity_type="journey", entity_id=row.id
        )


def _run_view(row: Any, steps: list[StepRecord] | None = None) -> Run:
    return Run(**{name: row._mapping[name] for name in Run.model_fields if name != "steps"}, steps=steps)


def runs_of(
    ctx: AppContext,
    *,
    journey_id: str | None = None,
    contact_ids: Sequence[str] | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 50,
    with_steps: bool = False,
) -> list[Run]:
    """Runs of a journey or of a contact, oldest first; ``with_steps`` adds each step's record.
    ``contact_ids``: a contact's id and the ids merged into it (runs keep the id they started with)."""
    query = sa.select(journey_runs).order_by(journey_runs.c.id).limit(limit)
    with ctx.db.read() as conn:
        if journey_id is not None:
            query = query.where(journey_runs.c.journey_id == _row(conn, journey_id).id)
        if contact_ids is not None:
            query = query.where(journey_runs.c.contact_id.in_(list(contact_ids)))
        if status:
            query = query.where(journey_runs.c.status == status)
        if after:
            query = query.where(journey_runs.c.id > after)
        rows = list(conn.execute(query))
        steps = _steps_of(conn, [row.id for row in rows]) if with_steps else {}
    return [_run_view(row, steps.get(row.id, []) if with_steps else None) for row in rows]


def _steps_of(conn: Connection, run_ids: list[str]) -> dict[str, list[StepRecord]]:
    if not run_ids:
        return {}
    query = (
        sa.select(journey_steps)
        .where(journey_steps.c.run_id.in_(run_ids))
        .order_by(journey_steps.c.run_id, journey_steps.c.id)
    )
    found: dict[str, list[StepRecord]] = {}
    for row in conn.execute(query):
        found.setdefault(row.run_id, []).append(
            StepRecord(**{name: row._mapping[name] for name in StepRecord.model_fields})
        )
    return found


def run(ctx: AppContext, run_id: str) -> Run:
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(journey_runs).where(journey_runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} not found", code="run_not_found")
        return _run_view(row, _steps_of(conn, [row.id]).get(row.id, []))


def metrics(ctx: AppContext, journey_id: str) -> JourneyMetrics:
    """Per journey and per step: how many runs entered, completed, are waiting, failed, converted
    (a step's ``converted`` counts runs that passed it and converted)."""
    with ctx.db.read() as conn:
        row = _row(conn, journey_id)
        by_status: dict[str, int] = dict(
            conn.execute(
                sa.select(journey_runs.c.status, sa.func.count())
                .where(journey_runs.c.journey_id == row.id)
                .group_by(journey_runs.c.status)
            ).all()
        )
        converted = conn.execute(
            sa.select(sa.func.count()).where(
                journey_runs.c.journey_id == row.id, journey_runs.c.converted_at.is_not(None)
            )
        ).scalar_one()
        steps = _step_metrics(conn, row.id)
    return JourneyMetrics(
        journey_id=row.id,
        entered=sum(by_status.values()),
        active=by_status.get("active", 0),
        completed=by_status.get("completed", 0),
        exited=by_status.get("exited", 0),
        converted=converted,
        failed=by_status.get("failed", 0),
        steps=steps,
    )


def _step_metrics(conn: Connection, journey_id: str) -> list[StepMetrics]:
    s, r = journey_steps, journey_runs

    def count(condition: Any) -> Any:
        return sa.func.count(sa.distinct(sa.case((condition, s.c.run_id))))

    query = (
        sa.select(
            s.c.step_id,
            sa.func.min(s.c.type),
            sa.func.count(sa.distinct(s.c.run_id)),
            count(s.c.status == "done"),
            count(s.c.status.in_(("pending", "held"))),
            count(s.c.status == "failed"),
            count(r.c.converted_at.is_not(None)),
        )
        .join(r, r.c.id == s.c.run_id)
        .where(s.c.journey_id == journey_id)
        .group_by(s.c.step_id)
        .order_by(s.c.step_id)
    )
    return [
        StepMetrics(step_id=a, type=b, entered=c, completed=d, waiting=e, failed=f, converted=g)
        for a, b, c, d, e, f, g in conn.execute(query)
    ]


ERASED = "contact erased"


def on_contacts_erased(conn: Connection, message: Any) -> None:
    """GDPR erasure: the people's runs end (``exited``, ``contact erased``) and their waiting steps are
    cancelled, so nothing more happens to them; runs and steps stay for the journeys' metrics but lose
    what was personal: the entering event (``trigger``), step details and errors."""
    ids, now = list(message.contact_ids), message.at
    r, s = journey_runs.c, journey_steps.c
    theirs = s.run_id.in_(sa.select(r.id).where(r.contact_id.in_(ids)))  # both by index
    conn.execute(journey_steps.update().where(theirs).values(detail=None, error=None))
    conn.execute(
        journey_steps.update()
        .where(theirs, s.status.in_(("pending", "held")))
        .values(status="cancelled", finished_at=now, error=ERASED)
    )
    redacted: dict[str, Any] = {"trigger": {}, "error": None, "goal_until": None}
    conn.execute(journey_runs.update().where(r.contact_id.in_(ids)).values(**redacted))
    conn.execute(
        journey_runs.update()
        .where(r.contact_id.in_(ids), r.status == "active")
        .values(status="exited", ended_at=now, exit_reason=ERASED, active_key=None)
    )


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The people's journey runs, each with its steps (GDPR export)."""
    query = sa.select(journey_runs).where(journey_runs.c.contact_id.in_(list(contact_ids)))
    rows = list(conn.execute(query.order_by(journey_runs.c.id)))
    steps = _steps_of(conn, [row.id for row in rows])
    return [_run_view(row, steps.get(row.id, [])).model_dump(mode="json") for row in rows]
