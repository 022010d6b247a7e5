"""Driving journeys in tests: templates, publishing, and running the pipeline on the virtual clock."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from leadflow.contacts.processor import EventProcessor
from leadflow.journeys import executor, service
from leadflow.journeys.models import journey_runs, journey_steps
from leadflow.journeys.schemas import JourneyCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging import templates
from leadflow.messaging.models import messages
from tests.support import events

ACTOR = "test"


def template(
    ctx: AppContext, key: str, *, kind: str = "marketing", subject: str | None = None, html: str | None = None
) -> None:
    templates.create(
        ctx,
        templates.TemplateCreate(
            key=key,
            name=key,
            kind=kind,
            subject=subject or f"{key} for {{{{ contact.first_name | default: 'you' }}}}",
            html=html or f"<p>{key}</p>",
        ),
        actor=ACTOR,
    )


def publish(ctx: AppContext, definition: dict[str, Any], *, key: str | None = None) -> str:
    journey = service.create(ctx, JourneyCreate(key=key, definition=definition), actor=ACTOR)
    service.publish(ctx, journey.id, actor=ACTOR)
    return journey.id


def settle(ctx: AppContext) -> None:
    """Process every waiting event and run every due step, until nothing is left to do now."""
    processor = EventProcessor(ctx)
    for _ in range(100):
        worked = 0
        while processor.process_next():
            worked += 1
        while executor.run_due(ctx):
            worked += 1
        if not worked:
            return
    raise AssertionError("the pipeline did not settle")


def advance(
    ctx: AppContext, clock: VirtualClock, delta: timedelta, step: timedelta = timedelta(hours=1)
) -> None:
    """Move the clock forward in steps, settling at each."""
    end = clock.now() + delta
    while clock.now() < end:
        clock.advance(min(step, end - clock.now()))
        settle(ctx)


def track(ctx: AppContext, user_id: str, event: str, **properties: Any) -> None:
    events.send(ctx, {"type": "track", "userId": user_id, "event": event, "properties": properties})


def identify(ctx: AppContext, user_id: str, **traits: Any) -> None:
    events.send(ctx, {"type": "identify", "userId": user_id, "traits": traits})


def sent(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(messages).order_by(messages.c.created_at, messages.c.id))
        ]


def runs(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(journey_runs).order_by(journey_runs.c.id))]


def steps(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(journey_steps).order_by(journey_steps.c.id))]
