"""What the Integrations pages share: the area, reading a posted form, the messages of errors, the
audit of the changes whose domain function records no actor, and the console's page links."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData

from leadflow.audit import service as audit
from leadflow.kernel import inputs, pagination
from leadflow.kernel.errors import LeadflowError
from leadflow.web.access import Console, PageError, Viewer

AREA = "integrations"  # admin changes, viewer reads (access.AREAS)
PAGE_SIZE = 50


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def message(exc: Exception) -> str:
    """A domain error's message, or pydantic's first complaint (without its URL)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    if isinstance(exc, LeadflowError):
        return exc.message
    return str(exc)


def json_of(raw: str, what: str) -> Any:
    """A posted JSON text (as strict as the API's bodies), or a ``ValueError`` naming the field."""
    try:
        return inputs.loads(raw)
    except LeadflowError as exc:
        raise ValueError(f"{what}: {exc.message}") from None


def pretty(value: Any) -> str:
    """JSON for reading: indented, keys in their order."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str) if value is not None else ""


def moment(value: str) -> datetime:
    """A ``datetime-local`` value, read as UTC (the console stores and shows UTC)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"{value!r} is not a date and time (YYYY-MM-DDTHH:MM, UTC)") from None


def position(cursor: str | None, key: str) -> Any:
    """The value of ``key`` in a page link's cursor, or the 400 page for a link the console did not make."""
    try:
        found = pagination.decode(cursor)
    except LeadflowError:
        found = {"bad": True}
    if found is None:
        return None
    if key not in found:
        raise PageError(400, "Bad link", "This page link is not one the console made.")
    return found[key]


def record(web: Console, viewer: Viewer, action: str, entity_type: str, entity_id: str, **data: Any) -> None:
    """Audit a change made from a page whose domain function takes no actor (a test send, a replay)."""
    with web.ctx.db.write() as conn:
        audit.record(
            conn,
            web.ctx.clock,
            actor=viewer.actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            data=data or None,
        )


def not_found(what: str, exc: LeadflowError) -> PageError:
    return PageError(404, f"No such {what}", exc.message)
