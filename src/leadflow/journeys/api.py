"""``/api/v1/journeys``: definitions, status changes, runs, metrics and the simulator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import BaseModel

from leadflow.contacts import service as contacts
from leadflow.journeys import installer, service, simulator
from leadflow.journeys.schemas import Journey, JourneyCreate, JourneyMetrics, JourneyPatch, Run
from leadflow.journeys.simulator import Simulation, SimulationRequest
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1", tags=["journeys"])
contact_router = APIRouter(prefix="/api/v1", tags=["contacts"])  # a contact's runs
STATUS = Query(None, pattern="^(draft|active|paused|archived)$")
RUN_STATUS = Query(None, pattern="^(active|completed|exited|converted|failed)$")


class InstallRequest(BaseModel):
    names: list[str] | None = None
    publish: bool = False


class InstalledView(BaseModel):
    key: str
    journey_id: str
    created: bool
    status: str


@router.post("/journeys", response_model=Journey, status_code=201, summary="Create a journey (a draft)")
def create_journey(
    body: JourneyCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Journey:
    return service.create(ctx, body, actor=principal.actor)


@router.get("/journeys", response_model=Page[Journey], summary="List journeys")
def list_journeys(
    status: str | None = STATUS,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Journey]:
    after = pagination.text_at(cursor, "after")
    items, next_cursor = paginate(
        service.listing(ctx, status=status, after=after, limit=limit + 1), limit, lambda j: {"after": j.id}
    )
    return Page[Journey](data=items, next_cursor=next_cursor)


@router.post(
    "/journeys/install-templates",
    response_model=list[InstalledView],
    summary="Install the ready-made journeys with their emails (idempotent)",
)
def install_templates(
    body: InstallRequest = Body(default_factory=InstallRequest),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> list[InstalledView]:
    found = installer.install_all(ctx, actor=principal.actor, names=body.names, publish=body.publish)
    return [InstalledView(**item.__dict__) for item in found]


@router.get("/journeys/{journey_id}", response_model=Journey, summary="Get a journey (by id or key)")
def get_journey(
    journey_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Journey:
    return service.get(ctx, journey_id)


@router.patch(
    "/journeys/{journey_id}",
    response_model=Journey,
    summary="Edit; an active journey publishes a new version",
)
def update_journey(
    journey_id: str,
    body: JourneyPatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Journey:
    return service.update(ctx, journey_id, body, actor=principal.actor)


@router.delete("/journeys/{journey_id}", status_code=204, response_class=Response, summary="Delete a draft")
def delete_journey(
    journey_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    service.delete(ctx, journey_id, actor=principal.actor)
    return Response(status_code=204)


def _action(name: str, summary: str) -> None:
    action = getattr(service, name)

    def endpoint(
        journey_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
    ) -> Journey:
        result: Journey = action(ctx, journey_id, actor=principal.actor)
        return result

    endpoint.__name__ = f"{name}_journey"
    router.add_api_route(
        f"/journeys/{{journey_id}}/{name}",
        endpoint,
        methods=["POST"],
        response_model=Journey,
        summary=summary,
    )


_action("publish", "Publish the working copy as a new version (a draft becomes active)")
_action("pause", "Pause: every pending step is held")
_action("resume", "Resume: held steps continue (those due meanwhile run at once)")
_action("archive", "Archive: no new entries; every run ends")


@router.get("/journeys/{journey_id}/runs", response_model=Page[Run], summary="Runs of a journey")
def journey_runs(
    journey_id: str,
    status: str | None = RUN_STATUS,
    steps: bool = Query(False, description="include each run's steps"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Run]:
    after = pagination.text_at(cursor, "after")
    found = service.runs_of(
        ctx, journey_id=journey_id, status=status, after=after, limit=limit + 1, with_steps=steps
    )
    items, next_cursor = paginate(found, limit, lambda r: {"after": r.id})
    return Page[Run](data=items, next_cursor=next_cursor)


@router.get("/journeys/{journey_id}/metrics", response_model=JourneyMetrics, summary="Per-step metrics")
def journey_metrics(
    journey_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> JourneyMetrics:
    return service.metrics(ctx, journey_id)


@router.post(
    "/journeys/{journey_id}/simulate", response_model=Simulation, summary="Simulate on a virtual clock"
)
def simulate_journey(
    journey_id: str,
    body: SimulationRequest,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Simulation:
    definition: dict[str, Any] = body.definition or service.get(ctx, journey_id).definition
    return simulator.simulate(ctx, definition, body)


@router.get("/journey-runs/{run_id}", response_model=Run, summary="One run with each step")
def get_run(run_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Run:
    return service.run(ctx, run_id)


@contact_router.get(
    "/contacts/{contact_id}/runs",
    response_model=Page[Run],
    summary="A contact's journey runs, oldest first: status, current step, each step's record",
)
@contact_router.get(
    "/contacts/{contact_id}/journey-runs",
    response_model=Page[Run],
    tags=["journeys"],
    summary="A contact's journey runs (the older name of /contacts/{contact_id}/runs)",
)
def contact_runs(
    contact_id: str,
    status: str | None = RUN_STATUS,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Run]:
    """Both paths are this one route. A merged contact's id answers as its survivor: the survivor's runs
    and those of every contact merged into it (a run keeps the id it started with); an unknown id
    ``404``."""
    after = pagination.text_at(cursor, "after")
    with ctx.db.read() as conn:
        ids = contacts.with_merged(conn, contact_id)
    found = service.runs_of(
        ctx, contact_ids=ids, status=status, after=after, limit=limit + 1, with_steps=True
    )
    items, next_cursor = paginate(found, limit, lambda r: {"after": r.id})
    return Page[Run](data=items, next_cursor=next_cursor)
