"""The ready-made journeys shipped in ``journeys/templates/*.yaml`` with their emails, segments, topics
and the default layout. Installing is idempotent: what already exists (by key) is left as it is, so an
edited template is never overwritten. Journeys are installed as drafts unless ``publish`` is asked."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from leadflow.journeys import manage
from leadflow.journeys.schemas import JourneyCreate
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, NotFound
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments

NAMES = (
    "welcome-series",
    "course-nurture",
    "abandoned-cart",
    "post-purchase-onboarding",
    "re-engagement",
    "birthday",
    "score-band-nurture",
    "mql-handoff",
    "assessment-career-changer",
    "consultation-reminders",
)


@dataclass(frozen=True)
class Installed:
    key: str
    journey_id: str
    created: bool
    status: str


def load(name: str) -> dict[str, Any]:
    """A shipped template file; ``definition`` is completed with the journey's name and description."""
    if name not in NAMES:
        raise NotFound(
            f"no journey template {name}; choose one of {', '.join(NAMES)}", code="unknown_template"
        )
    text = resources.files("leadflow.journeys.templates").joinpath(f"{name}.yaml").read_text("utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    data["definition"] = {"name": data["name"], "description": data.get("description"), **data["definition"]}
    return data


def default_layout() -> dict[str, Any]:
    """The layout leadflow ships, as its fields."""
    return messaging.default_layout().model_dump()


def install_support(ctx: AppContext, data: dict[str, Any], *, actor: str) -> None:
    """The layout, topics, segments and emails a template file needs (existing keys are kept)."""
    with ctx.db.write() as conn:
        messaging.save_layout(conn, ctx, messaging.default_layout(), replace=False)
        for topic in data.get("topics", []):
            messaging.save_topic(conn, ctx, messaging.Topic(**topic))
    for segment in data.get("segments", []):
        with ctx.db.read() as conn:
            exists = segments.by_key(conn, segment["key"]) is not None
        if not exists:
            fields = {k: v for k, v in segment.items() if k != "key"}
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                segments.create(ctx, segments.SegmentCreate(**fields), actor=actor, key=segment["key"])
    for email in data.get("emails", []):
        with contextlib.suppress(Conflict):  # an existing (perhaps edited) template is kept
            messaging.create_template(ctx, messaging.TemplateCreate(**email), actor=actor)


def _borrowed(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Emails the journey uses that another shipped file defines (``owner-notification``)."""
    used = {s["template"] for s in data["definition"]["steps"] if s.get("template")}
    own = {e["key"] for e in data.get("emails", [])}
    found = []
    for other in NAMES:
        for email in load(other).get("emails", []) if used - own else []:
            if email["key"] in used - own:
                found.append(email)
                own.add(email["key"])
    return found


def install(ctx: AppContext, name: str, *, actor: str, publish: bool = False) -> Installed:
    data = load(name)
    data["emails"] = [*data.get("emails", []), *_borrowed(data)]
    install_support(ctx, data, actor=actor)
    created = False
    try:
        journey = manage.get(ctx, data["key"])
    except NotFound:
        journey = manage.create(
            ctx, JourneyCreate(key=data["key"], definition=data["definition"]), actor=actor
        )
        created = True
    if publish and journey.status == "draft":
        journey = manage.publish(ctx, journey.id, actor=actor)
    return Installed(key=data["key"], journey_id=journey.id, created=created, status=journey.status)


def install_all(
    ctx: AppContext, *, actor: str, names: list[str] | None = None, publish: bool = False
) -> list[Installed]:
    return [install(ctx, name, actor=actor, publish=publish) for name in (names or list(NAMES))]
