"""A journey's definition editor (YAML, with each problem shown beside it with its line) and the
simulator (the journeys service's: a made-up contact on a virtual clock, nothing saved or sent), whose
timeline and rendered emails the page shows.

Saving goes through the service's ``update`` like ``PATCH /api/v1/journeys/{id}``: a draft keeps the new
working copy; an active or paused journey publishes it at once as a new version. A definition with
problems is answered 422 with the editor, the text as typed and the problems; nothing is saved.

Simulating changes nothing, so a viewer may simulate too (the form still carries the CSRF token). The
rendered emails are kept in this process for the page's frames (the last :data:`KEPT` simulations) and
served with a policy of their own: their styles apply, no script runs, no image or other request leaves
the frame (images are left out of the preview, so a tracking pixel is never fetched).
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from typing import Any

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.errors import LeadflowError
from leadflow.web import sessions
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.journey_pages import AREA, get_journey, journey_path, text
from leadflow.web.journey_text import Problem, dump, load, problems_of, read, status_of
from leadflow.web.render import page as render

router = APIRouter()
KEPT = 50  # simulations whose emails stay viewable in this process
HORIZONS = ("7d", "30d", "90d", "365d")
PREVIEW_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"
)
IMAGE = re.compile(r"<img\b[^>]*>", re.I)


class _Previews:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: OrderedDict[str, list[str]] = OrderedDict()

    def keep(self, pages: list[str]) -> str:
        token = secrets.token_urlsafe(16)
        with self.lock:
            self.items[token] = pages
            while len(self.items) > KEPT:
                self.items.popitem(last=False)
        return token

    def find(self, token: str, number: int) -> str | None:
        with self.lock:
            pages = self.items.get(token)
        return pages[number] if pages is not None and 0 <= number < len(pages) else None


_PREVIEWS: Slot[_Previews] = Slot("web.journey_previews", lambda _ctx: _Previews())


def previews(ctx: AppContext) -> _Previews:
    return ctx.get(_PREVIEWS)


def _editor(
    request: Request, web: Console, viewer: Viewer, journey_id: str, code: int = 200, **values: Any
) -> Response:
    journey = get_journey(web, journey_id)
    return render(
        request,
        "journeys/edit.html",
        viewer,
        code,
        title=f"Edit {journey.name}",
        journey=journey,
        path=journey_path,
        can_change=viewer.may_change(AREA),
        horizons=HORIZONS,
        **{"yaml": dump(journey.definition), "problems": [], **values},
    )


@router.get("/journeys/{journey_id}/edit")
def edit(
    request: Request, journey_id: str, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _editor(request, web, viewer, journey_id)


@router.post("/journeys/{journey_id}/edit")
async def save(
    request: Request, journey_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    journey = get_journey(web, journey_id)
    source = text(await request.form(), "definition")
    data, problems = read(source)
    code = 422
    if not problems:
        try:
            journeys.update(web.ctx, journey.id, journeys.JourneyPatch(definition=data), actor=viewer.actor)
            return RedirectResponse(f"{journey_path(journey.id)}?done=saved", status_code=303)
        except LeadflowError as exc:
            problems, code = problems_of(exc, source), status_of(exc)
    return _editor(request, web, viewer, journey.id, code, yaml=source, problems=problems)


async def reader(
    request: Request, found: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Viewer:
    """A POST that changes nothing (simulate): any role of the area, with the CSRF token."""
    given = request.headers.get("x-csrf-token") or (await request.form()).get("csrf")
    if not isinstance(given, str) or not sessions.csrf_ok(web.secret, found.session.token, given):
        raise PageError(403, "Form expired", "This form is out of date (CSRF check): reload the page.")
    return found


def _simulate_page(
    request: Request, web: Console, viewer: Viewer, journey_id: str, code: int = 200, **values: Any
) -> Response:
    journey = get_journey(web, journey_id)
    defaults = {"email": "simulated@example.com", "first_name": "Sam", "horizon": "30d", "events": ""}
    return render(
        request,
        "journeys/simulate.html",
        viewer,
        code,
        title=f"Simulate {journey.name}",
        journey=journey,
        path=journey_path,
        horizons=HORIZONS,
        **{"form": defaults, "result": None, "problems": [], "token": None, "source": "", **values},
    )


@router.get("/journeys/{journey_id}/simulate")
def simulate_form(
    request: Request, journey_id: str, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _simulate_page(request, web, viewer, journey_id)


def _request(form: dict[str, str]) -> journeys.SimulationRequest:
    """The simulator's request from the form: the contact, the horizon, the scripted events (a YAML
    list of ``{after, event, properties}``)."""
    scripted: Any = []
    if form["events"].strip():
        try:
            scripted = load(form["events"])
        except (yaml.YAMLError, RecursionError):
            raise ValueError("events: not valid YAML (or nested too deep)") from None
        if not isinstance(scripted, list):
            raise ValueError("events: a list of {after, event, properties}")
    contact = {"email": form["email"] or None, "first_name": form["first_name"] or None}
    return journeys.SimulationRequest.model_validate(
        {"contact": contact, "horizon": form["horizon"], "events": scripted}
    )


@router.post("/journeys/{journey_id}/simulate")
async def simulate(
    request: Request, journey_id: str, viewer: Viewer = Depends(reader), web: Console = Depends(console)
) -> Response:
    """Simulate the saved working copy, or the text of the editor when it sends one (``definition``)."""
    journey = get_journey(web, journey_id)
    posted = await request.form()
    form = {name: text(posted, name) for name in ("email", "first_name", "horizon", "events")}
    form["horizon"] = form["horizon"] if form["horizon"] in HORIZONS else "30d"
    source = text(posted, "definition")
    definition: dict[str, Any] = journey.definition
    if source.strip():
        definition, problems = read(source)
        if problems:
            return _simulate_page(request, web, viewer, journey.id, 422, form=form, problems=problems)
    try:
        result = journeys.simulate(web.ctx, definition, _request(form))
    except LeadflowError as exc:
        problems = problems_of(exc, source) if source else [Problem("", None, exc.message)]
        return _simulate_page(request, web, viewer, journey.id, status_of(exc), form=form, problems=problems)
    except (ValidationError, ValueError) as exc:
        problems = [Problem("", None, _first_error(exc))]
        return _simulate_page(request, web, viewer, journey.id, 422, form=form, problems=problems)
    pages = [IMAGE.sub("", m.email.html) for m in result.timeline if m.email is not None]
    token = previews(web.ctx).keep(pages)
    return _simulate_page(
        request, web, viewer, journey.id, form=form, result=result, token=token, source=source
    )


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}".removeprefix(": ")
    return str(exc)


@router.get("/journeys/previews/{token}/{number}")
def preview(
    token: str, number: int, _: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """A simulated email's HTML, for the simulation page's frame."""
    found = previews(web.ctx).find(token, number)
    if found is None:
        found = "<p>This preview has expired: simulate again.</p>"
    headers = {
        "Content-Security-Policy": PREVIEW_POLICY,
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(found, headers=headers)
