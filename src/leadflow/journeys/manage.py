"""Managing journeys: create, edit, validate, publish, change status, read runs and metrics.

Other domains and the console use these through :mod:`leadflow.journeys.service`.

Status: ``draft`` → (publish) ``active`` ⇄ ``paused``; any → ``archived``. Publishing freezes the
working copy as a new version; contacts already inside continue on the version they entered. Editing an
active journey publishes at once. Pausing holds every pending step (``held``); resuming releases them,
and steps that fell due meanwhile run at once. Archiving ends every run (``journey archived``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import service as crm
from leadflow.journeys import definitions, queries, runs
from leadflow.journeys.schemas import (
    Journey,
    JourneyCreate,
    JourneyMetrics,
    JourneyPatch,
    Run,
    StepMetrics,
    StepRecord,
    Version,
)
from leadflow.kernel import netguard
from leadflow.kernel.brand import require_postal_address
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.messaging import service as messaging
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
    missing = sorted(templates - set(messaging.template_ids(conn, sorted(templates))))
    if missing:
        raise Invalid(f"email templates not found: {', '.join(missing)}", code="unknown_template")
    unknown = sorted(s for s in definition.segments() if segments.resolve(conn, s) is None)
    if unknown:
        raise Invalid(f"segments not found: {', '.join(unknown)}", code="unknown_segment")
    check_deal_steps(conn, definition)


DEAL_CODES = {"pipeline_not_found": "unknown_pipeline", "stage_not_found": "unknown_stage"}


def check_deal_steps(conn: Connection, definition: definitions.Definition) -> None:
    """Each ``create_deal`` / ``move_deal`` step names a pipeline that exists (or there is a default
    one) and a stage of it, with the reason a won or lost stage needs: ``422 unknown_pipeline``,
    ``unknown_stage``, ``pipeline_required`` or ``reason_required``, naming the step."""
    for step in definition.deal_steps():
        try:
            crm.deal_target(conn, step.pipeline, step.stage, step.reason)
        except Invalid as exc:
            code = DEAL_CODES.get(exc.code, exc.code)
            raise Invalid(f"step {step.id!r}: {exc.message}", code=code) from None


def _row(conn: Connection, journey_id: str, *, lock: bool = False) -> Any:
    row = conn.execute(queries.journey(conn.dialect.name, journey_id, lock=lock)).first()
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
        if data.key and conn.execute(queries.journey_with_key(data.key)).first():
            raise Conflict(f"a journey with key {data.key} exists", code="journey_exists")
        conn.execute(
            queries.insert_journey(
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
    query = queries.journeys_page(status=status, after=after, limit=limit)
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
        conn.execute(queries.update_journey(row.id, **values))
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
    current = conn.execute(queries.latest_version(journey_id)).scalar()
    version = (current or 0) + 1
    conn.execute(
        queries.insert_version(
            journey_id=journey_id, version=version, definition=raw, published_at=now, published_by=actor[:64]
        )
    )
    status = conn.execute(queries.journey_status(journey_id)).scalar_one()
    conn.execute(
        queries.update_journey(
            journey_id,
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
        conn.execute(queries.update_journey(row.id, status=wanted, updated_at=now))
        audit.record(
            conn, ctx.clock, actor=actor, action=f"journey.{wanted}", entity_type="journey", entity_id=row.id
        )
    with ctx.db.write() as conn:  # a second transaction: see claim() in runs.py for why
        _move_steps(conn, ctx, row.id, wanted, now)
        return _view(_row(conn, row.id))


def _move_steps(conn: Connection, ctx: AppContext, journey_id: str, status: str, now: Any) -> None:
    for statement in queries.move_steps(journey_id, status, now):
        conn.execute(statement)
    if status == "active":
        on_commit(conn, lambda: ctx.signals.announce(runs.CHANNEL))


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
        conn.execute(queries.delete_journey(row.id))
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
    with ctx.db.read() as conn:
        query = queries.runs_page(
            journey_id=_row(conn, journey_id).id if journey_id is not None else None,
            contact_ids=contact_ids,
            status=status,
            after=after,
            limit=limit,
        )
        rows = list(conn.execute(query))
        steps = _steps_of(conn, [row.id for row in rows]) if with_steps else {}
    return [_run_view(row, steps.get(row.id, []) if with_steps else None) for row in rows]


def _steps_of(conn: Connection, run_ids: list[str]) -> dict[str, list[StepRecord]]:
    if not run_ids:
        return {}
    found: dict[str, list[StepRecord]] = {}
    for row in conn.execute(queries.steps_of(run_ids)):
        found.setdefault(row.run_id, []).append(
            StepRecord(**{name: row._mapping[name] for name in StepRecord.model_fields})
        )
    return found


def run(ctx: AppContext, run_id: str) -> Run:
    with ctx.db.read() as conn:
        row = conn.execute(queries.run(run_id)).first()
        if row is None:
            raise NotFound(f"run {run_id} not found", code="run_not_found")
        return _run_view(row, _steps_of(conn, [row.id]).get(row.id, []))


def metrics(ctx: AppContext, journey_id: str) -> JourneyMetrics:
    """Per journey and per step: how many runs entered, completed, are waiting, failed, converted
    (a step's ``converted`` counts runs that passed it and converted)."""
    with ctx.db.read() as conn:
        row = _row(conn, journey_id)
        by_status: dict[str, int] = dict(conn.execute(queries.runs_by_status(row.id)).all())
        converted = conn.execute(queries.converted_runs(row.id)).scalar_one()
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
    query = queries.step_metrics(journey_id)
    return [
        StepMetrics(step_id=a, type=b, entered=c, completed=d, waiting=e, failed=f, converted=g)
        for a, b, c, d, e, f, g in conn.execute(query)
    ]


ERASED = "contact erased"


def on_contacts_erased(conn: Connection, message: Any) -> None:
    """GDPR erasure: the people's runs end (``exited``, ``contact erased``) and their waiting steps are
    cancelled, so nothing more happens to them; runs and steps stay for the journeys' metrics but lose
    what was personal: the entering event (``trigger``), step details and errors."""
    for statement in queries.erase(list(message.contact_ids), message.at, ERASED):
        conn.execute(statement)


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The people's journey runs, each with its steps (GDPR export)."""
    rows = list(conn.execute(queries.runs_of_contacts(contact_ids)))
    steps = _steps_of(conn, [row.id for row in rows])
    return [_run_view(row, steps.get(row.id, [])).model_dump(mode="json") for row in rows]


def run_counts(ctx: AppContext, journey_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Per journey, how many runs are in each status (``active``, ``completed``, ``exited``,
    ``converted``, ``failed``): one grouped query for a whole list of journeys."""
    if not journey_ids:
        return {}
    found: dict[str, dict[str, int]] = {}
    with ctx.db.read() as conn:
        for journey_id, status, count in conn.execute(queries.runs_by_journey(journey_ids)):
            found.setdefault(journey_id, {})[status] = count
    return found


def versions_of(ctx: AppContext, journey_id: str) -> list[Version]:
    """A journey's published versions, newest first (without their definitions)."""
    with ctx.db.read() as conn:
        row = _row(conn, journey_id)
        return [
            Version(journey_id=row.id, version=v, published_at=at, published_by=by, definition=None)
            for v, at, by in conn.execute(queries.version_list(row.id))
        ]


def version(ctx: AppContext, journey_id: str, number: int) -> Version:
    """One published version with its definition (``404 version_not_found`` if there is none)."""
    with ctx.db.read() as conn:
        row = _row(conn, journey_id)
        found = conn.execute(queries.version_of(row.id, number)).first()
    if found is None:
        raise NotFound(f"journey {journey_id} has no version {number}", code="version_not_found")
    return Version(
        journey_id=row.id,
        version=found.version,
        published_at=found.published_at,
        published_by=found.published_by,
        definition=found.definition,
    )
