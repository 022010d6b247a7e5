"""Connectors in the Integrations area: the list with each one's **health** over the last hour (success
rate, lag p50/p99, backlog, dead letters, last error, alerting), and a connector's page — settings,
the vendor's **options** (one field each, checked by the vendor's own checks, each mistake shown
under its field), mapping and triggers (changed by posting their JSON, checked by the connectors
domain), test the connection, the dead letters with **replay** (one, or all dead since a time) and the
per-field audit (newest first, 50 a page).

Credentials are sealed by the connectors domain and no view holds them: the page says only whether
some are set. Replays, which the domain does not audit, are audited here as ``user:<email>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.connectors import service as connectors
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.integration_kit import (
    AREA,
    PAGE_SIZE,
    json_of,
    message,
    moment,
    not_found,
    pretty,
    record,
    text,
)
from leadflow.web.render import page as render

router = APIRouter()
LISTED = 100  # connectors on the list page (each with its health: a few queries per connector)
INT32_MAX = 2**31 - 1


def connector_path(connector_id: str) -> str:
    return f"/app/integrations/connectors/{connector_id}"


@router.get("/integrations/connectors")
def listing(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    found = connectors.listing(web.ctx, after=None, limit=LISTED)
    health = {c["id"]: connectors.health(web.ctx, c["id"]) for c in found}
    return render(
        request,
        "integrations/connectors.html",
        viewer,
        title="Connectors",
        connectors=found,
        health=health,
        path=connector_path,
    )


def _connector(web: Console, connector_id: str) -> dict[str, Any]:
    try:
        return connectors.get(web.ctx, connector_id)
    except NotFound as exc:
        raise not_found("connector", exc) from None


def _number(request: Request, name: str) -> int:
    raw = request.query_params.get(name) or "0"
    if not raw.isdigit() or int(raw) > INT32_MAX:
        raise PageError(400, "Bad link", "This page link is not one the console made.")
    return int(raw)


def _option_names(vendor: str) -> list[str]:
    kind = connectors.VENDORS.get(vendor)
    return sorted(kind.options) if kind else []


def _option_text(value: Any) -> str:
    """An option as its field shows it: text as it is, a number or an object as JSON."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _posted_options(vendor: str, form: FormData) -> tuple[dict[str, str], dict[str, Any], dict[str, str]]:
    """The options posted (one field ``option_<name>`` per option the vendor reads): the texts as typed,
    the values checked by the vendor's own checks (an empty field unsets the option), and each field's
    problem. A text starting with ``{`` or ``[`` is read as JSON (Pipedrive's and Salesforce's
    ``stages``); any other is given as typed (``"5"`` is a valid id)."""
    known = connectors.VENDORS[vendor].options
    raw = {name: text(form, f"option_{name}") for name in sorted(known)}
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, given in raw.items():
        if not given:
            continue
        try:
            value = json_of(given, "not JSON") if given.startswith(("{", "[")) else given
            values[name] = known[name](name, value)
        except (LeadflowError, ValueError) as exc:
            problems[name] = message(exc)
    return raw, values, problems


def _connector_page(
    request: Request, viewer: Viewer, web: Console, connector_id: str, status: int = 200, **values: Any
) -> Response:
    found = _connector(web, connector_id)
    after, before = _number(request, "dead_after"), _number(request, "audit_before")
    dead = connectors.dead_letters(web.ctx, connector_id, after, PAGE_SIZE + 1)
    audit = connectors.audit(
        web.ctx, connector_id=connector_id, contact_id=None, before=before or None, limit=PAGE_SIZE + 1
    )
    base = connector_path(connector_id)
    return render(
        request,
        "integrations/connector.html",
        viewer,
        status,
        title=f"Connector {found['name']}",
        c=found,
        health=connectors.health(web.ctx, connector_id),
        mapping=values.pop("mapping", None) or pretty(found["mapping"]),
        triggers=values.pop("triggers", None) or pretty(found["triggers"]),
        option_names=_option_names(found["vendor"]),
        option_texts=values.pop("option_texts", None) or _stored_texts(found["options"]),
        option_problems=values.pop("option_problems", None) or {},
        dead=dead[:PAGE_SIZE],
        dead_more=f"{base}?dead_after={dead[PAGE_SIZE - 1]['id']}#dead" if len(dead) > PAGE_SIZE else None,
        dead_first=f"{base}#dead" if after else None,
        audit=audit[:PAGE_SIZE],
        audit_more=f"{base}?audit_before={audit[PAGE_SIZE - 1]['id']}#audit"
        if len(audit) > PAGE_SIZE
        else None,
        audit_first=f"{base}#audit" if before else None,
        can_change=viewer.may_change(AREA),
        action=base,
        **values,
    )


def _stored_texts(options: Mapping[str, Any] | None) -> dict[str, str]:
    return {name: _option_text(value) for name, value in (options or {}).items()}


@router.get("/integrations/connectors/{connector_id}")
def connector(
    request: Request,
    connector_id: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _connector_page(request, viewer, web, connector_id, done=done)


@router.post("/integrations/connectors/{connector_id}/settings")
async def settings(
    request: Request,
    connector_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Replace the mapping and the triggers with the posted JSON (checked as the API checks them)."""
    _connector(web, connector_id)
    form = await request.form()
    raw = {"mapping": text(form, "mapping"), "triggers": text(form, "triggers")}
    try:
        values = {name: json_of(value, f"the {name}") for name, value in raw.items()}
        connectors.update(web.ctx, connector_id, values, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _connector_page(request, viewer, web, connector_id, 422, error=message(exc), **raw)
    return RedirectResponse(f"{connector_path(connector_id)}?done=saved", status_code=303)


@router.post("/integrations/connectors/{connector_id}/options")
async def set_options(
    request: Request,
    connector_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Replace the vendor's options with the posted fields (as ``PUT``/``PATCH`` of the API and
    ``leadflow connectors options`` do: ``connectors.update``, audited ``connector.updated``). A field the
    vendor's check refuses answers the page (422) with that field's reason under it and every text kept;
    nothing is saved."""
    found = _connector(web, connector_id)
    if not _option_names(found["vendor"]):
        raise PageError(404, "No options", f"{found['vendor']} connectors have no options.")
    raw, values, problems = _posted_options(found["vendor"], await request.form())
    error = "The options were not saved: see the fields marked below."
    if not problems:
        try:
            connectors.update(web.ctx, connector_id, {"options": values}, actor=viewer.actor)
        except LeadflowError as exc:
            error = f"The options were not saved: {message(exc)}"
        else:
            return RedirectResponse(f"{connector_path(connector_id)}?done=options", status_code=303)
    return _connector_page(
        request, viewer, web, connector_id, 422, error=error, option_texts=raw, option_problems=problems
    )


@router.post("/integrations/connectors/{connector_id}/test")
async def check_connection(
    request: Request,
    connector_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """One authenticated call to the vendor (through the network guard); the answer says how it went."""
    _connector(web, connector_id)
    try:
        connectors.test_connection(web.ctx, connector_id)
    except LeadflowError as exc:
        return _connector_page(request, viewer, web, connector_id, 502, tested=False, error=message(exc))
    return _connector_page(request, viewer, web, connector_id, tested=True)


@router.post("/integrations/connectors/{connector_id}/replay")
async def replay(
    request: Request,
    connector_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Dead letters due again now with fresh attempts: one (``id``) or every one dead since a time."""
    _connector(web, connector_id)
    form = await request.form()
    one, since = text(form, "id"), text(form, "since")
    try:
        if one:
            if not one.isdigit() or int(one) > INT32_MAX:
                raise ValueError(f"{one!r} is not a dead letter's number")
            count = connectors.replay(web.ctx, row_id=int(one), connector_id=connector_id)
        else:
            when = moment(since)
            count = connectors.replay(web.ctx, connector_id=connector_id, since=when)
    except (LeadflowError, ValueError) as exc:
        return _connector_page(request, viewer, web, connector_id, 422, error=message(exc))
    details = {"id": int(one)} if one else {"since": since}
    record(web, viewer, "connector.dead_letters_replayed", "connector", connector_id, count=count, **details)
    return RedirectResponse(f"{connector_path(connector_id)}?done=replayed-{count}", status_code=303)
