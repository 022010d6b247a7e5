"""What a step handler answers for each item (:class:`Outcome`), and what handlers share: the Liquid
variables of an item, its message row, rendering data per contact, and the idempotency key and actor
of the changes a step makes in other domains."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys.runs import Item
from leadflow.kernel.brand import brand
from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging


@dataclass
class Outcome:
    item: Item
    kind: str  # next | hold | end | fail
    target: str | None = None
    branch: str | None = None
    due_at: datetime | None = None
    waiting_for: str | None = None
    status: str | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    variant: str | None = None


def advance(item: Item, target: str | None, branch: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "next", target=target, branch=branch, **extra)


def hold(item: Item, due_at: datetime, waiting_for: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "hold", due_at=due_at, waiting_for=waiting_for, **extra)


def end(item: Item, status: str, reason: str, branch: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "end", status=status, reason=reason, branch=branch, **extra)


def fail(item: Item, reason: str) -> Outcome:
    return Outcome(item, "fail", reason=reason)


Handler = Callable[[Connection, AppContext, list[Item], datetime], list[Outcome]]


def liquid_context(item: Item) -> dict[str, Any]:
    """What a template sees besides the contact: the entering event, journey and step variables."""
    step = item.step
    variables = {**item.journey.definition.variables, **getattr(step, "variables", {})}
    return {
        "event": (item.trigger or {}).get("properties") or {},
        "vars": variables,
        "journey": {"id": item.journey.journey_id, "key": item.journey.key, "name": item.journey.name},
    }


def message_row(item: Item, now: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "key": f"j:{item.key}",
        "contact_id": item.contact_id,
        "journey_id": item.journey.journey_id,
        "run_id": item.run_id,
        "step_id": item.step_id,
        "context": liquid_context(item),
        "due_at": now,
        "to_address": None,
        "error": None,
    }
    row.update(values)
    return row


def render_each(
    conn: Connection, ctx: AppContext, items: list[Item], data: dict[str, Any], where: str
) -> dict[str, dict[str, Any] | str]:
    """Render ``data`` (Liquid strings) for each item's contact with an email's variables
    (:mod:`leadflow.messaging.build.liquid_data`): the rendered data, or the error text."""
    ids = [item.contact_id for item in items]
    compiled = messaging.compile_data(data, where)
    known = messaging.people(conn, ids) if compiled.sources else {}  # static data needs no variables
    shared = {"brand": brand(ctx.settings).variables(), "contact": None, "company": None}
    rendered: dict[str, dict[str, Any] | str] = {}
    for item in items:
        try:
            values = {**shared, **known.get(item.contact_id, {}), **liquid_context(item)}
            rendered[item.key] = compiled.render(values)
        except messaging.TemplateError as exc:
            rendered[item.key] = str(exc)
    return rendered


def actor_of(item: Item) -> str:
    return f"journey:{item.journey.journey_id}"


def step_key(item: Item) -> str:
    """The idempotency key a CRM change of this step carries (the same in any retry)."""
    return f"journey:{item.key}"
