"""The console's journeys: the list (with each journey's run counts), creating one from a shipped
template or from YAML, a journey's page (its graph with each step's counts, its status changes) and its
published versions.

Everything goes through :mod:`leadflow.journeys.service`, the functions the API uses, so every change is
audited as ``user:<email>``. A marketer or admin changes; a viewer reads (no forms, a POST is refused);
sales do not see journeys. The editor and the simulator are in :mod:`leadflow.web.journey_editor`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.journeys import service as journeys
from leadflow.kernel.errors import Conflict, Invalid, LeadflowError, NotFound
from leadflow.web import journey_graph
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.journey_text import dump, problems_of, read, status_of
from leadflow.web.render import page as render

router = APIRouter()
AREA = "journeys"
STATUSES = ("draft", "active", "paused", "archived")
LIMIT = 500  # journeys listed (an installation has tens)
ACTIONS = {  # action: (service function, the statuses it applies to, the button's words)
    "publish": (journeys.publish, ("draft", "active", "paused"), "Publish"),
    "pause": (journeys.pause, ("active",), "Pause"),
    "resume": (journeys.resume, ("paused",), "Resume"),
    "archive": (journeys.archive, ("draft", "active", "paused"), "Archive"),
}
DONE = {
    "created": "Journey created (a draft).",
    "existed": "That template is installed already: here is its journey.",
    "saved": "Saved.",
    "publish": "Published: new contacts enter this version.",
    "pause": "Paused: every waiting step is held.",
    "resume": "Resumed.",
    "archive": "Archived: every run has ended.",
}
BLANK = """name: My journey
trigger:
  type: event
  event: Signed Up
steps:
  - id: first-email
    type: send_email
    template: welcome-1
    next: wait-2d
  - id: wait-2d
    type: wait
    duration: 2d
"""


def journey_path(journey_id: str) -> str:
    return f"/app/journeys/{journey_id}"


@cache
def shipped() -> list[tuple[str, str, str]]:
    """The shipped templates: (file name, journey name, description)."""
    found = []
    for name in journeys.TEMPLATE_NAMES:
        data = journeys.load_template(name)
        found.append((name, str(data["name"]), str(data.get("description") or "")))
    return found


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def get_journey(web: Console, journey_id: str) -> journeys.Journey:
    try:
        return journeys.get(web.ctx, journey_id)
    except NotFound:
        raise PageError(404, "No such journey", f"There is no journey {journey_id}.") from None


def _list_page(
    request: Request, web: Console, viewer: Viewer, status: str | None, code: int = 200, **values: Any
) -> Response:
    items = journeys.listing(web.ctx, status=status, after=None, limit=LIMIT)
    counts = journeys.run_counts(web.ctx, [j.id for j in items])
    return render(
        request,
        "journeys/list.html",
        viewer,
        code,
        title="Journeys",
        journeys=items,
        counts=counts,
        statuses=STATUSES,
        chosen=status,
        templates=shipped(),
        can_change=viewer.may_change(AREA),
        path=journey_path,
        **{"yaml": BLANK, "problems": [], **values},
    )


@router.get("/journeys")
def journey_list(
    request: Request,
    status: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _list_page(request, web, viewer, status if status in STATUSES else None)


@router.post("/journeys/from-template")
async def from_template(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Install a shipped journey (with its emails, segments and topics) as a draft; one already
    installed (same key) is opened instead, never overwritten."""
    name = text(await request.form(), "template")
    if name not in journeys.TEMPLATE_NAMES:
        message = f"Choose one of the templates ({', '.join(journeys.TEMPLATE_NAMES)})."
        return _list_page(request, web, viewer, None, 422, error=message)
    try:
        found = journeys.install_template(web.ctx, name, actor=viewer.actor)
    except LeadflowError as exc:
        return _list_page(request, web, viewer, None, status_of(exc), error=exc.message)
    done = "created" if found.created else "existed"
    return RedirectResponse(f"{journey_path(found.journey_id)}?done={done}", status_code=303)


@router.post("/journeys/new")
async def create(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """A new draft from the YAML typed in; its problems are listed with their lines (422)."""
    source = text(await request.form(), "definition")
    data, problems = read(source)
    if not problems:
        try:
            made = journeys.create(web.ctx, journeys.JourneyCreate(definition=data), actor=viewer.actor)
            return RedirectResponse(f"{journey_path(made.id)}?done=created", status_code=303)
        except LeadflowError as exc:
            problems = problems_of(exc, source)
    return _list_page(request, web, viewer, None, 422, yaml=source, problems=problems)


def journey_page(
    request: Request, web: Console, viewer: Viewer, journey_id: str, code: int = 200, **values: Any
) -> Response:
    journey = get_journey(web, journey_id)
    metrics = journeys.metrics(web.ctx, journey.id)
    by_step = {s.step_id: s for s in metrics.steps}
    try:
        definition = journeys.validate(journey.definition)
        graph = journey_graph.layout(definition, by_step)
        steps = definition.steps
    except Invalid:  # a working copy saved before a rule tightened: shown as text, not drawn
        definition, graph, steps = None, None, []
    drawn = {s.id for s in steps}
    return render(
        request,
        "journeys/journey.html",
        viewer,
        code,
        title=journey.name,
        journey=journey,
        metrics=metrics,
        graph=graph,
        steps=steps,
        by_step=by_step,
        detail=journey_graph.step_detail,
        others=[s for s in metrics.steps if s.step_id not in drawn],
        trigger=journey_graph.trigger_text(definition.trigger) if definition else None,
        actions=[(a, words) for a, (_, allowed, words) in ACTIONS.items() if journey.status in allowed],
        versions=journeys.versions_of(web.ctx, journey.id),
        can_change=viewer.may_change(AREA),
        message=DONE.get(str(request.query_params.get("done"))),
        **values,
    )


@router.get("/journeys/{journey_id}")
def journey(
    request: Request, journey_id: str, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return journey_page(request, web, viewer, journey_id)


def _action(action: str) -> None:
    """``POST /journeys/{id}/<action>``: publish, pause, resume or archive. A change the status does not
    allow is a 409 with the reason, a journey that cannot be published (a missing email template,
    segment, the postal address...) a 422."""
    do = ACTIONS[action][0]

    async def endpoint(
        request: Request,
        journey_id: str,
        viewer: Viewer = Depends(change(AREA)),
        web: Console = Depends(console),
    ) -> Response:
        journey = get_journey(web, journey_id)
        try:
            do(web.ctx, journey.id, actor=viewer.actor)
        except (Conflict, Invalid) as exc:
            return journey_page(request, web, viewer, journey.id, status_of(exc), error=exc.message)
        return RedirectResponse(f"{journey_path(journey.id)}?done={action}", status_code=303)

    endpoint.__name__ = f"{action}_journey"
    router.add_api_route(f"/journeys/{{journey_id}}/{action}", endpoint, methods=["POST"])


for _name in ACTIONS:
    _action(_name)


@router.get("/journeys/{journey_id}/versions/{number}")
def version(
    request: Request,
    journey_id: str,
    number: int,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    journey = get_journey(web, journey_id)
    try:
        found = journeys.version(web.ctx, journey.id, number)
    except NotFound as exc:
        raise PageError(404, "No such version", exc.message) from None
    return render(
        request,
        "journeys/version.html",
        viewer,
        title=f"{journey.name}, version {number}",
        journey=journey,
        version=found,
        yaml=dump(found.definition or {}),
        path=journey_path,
    )
