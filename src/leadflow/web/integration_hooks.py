"""Webhooks in the Integrations area: outgoing endpoints (list, register, edit, turn on and off, rotate
the secret, send a test, statistics), an endpoint's **delivery log** (newest first, by status, 50 a
page) and a delivery's request and response, replaying one delivery or every failed one since a time;
and the incoming senders (``/hooks/{source}``) with what they delivered, a failed one replayable.

An endpoint's ``whsec_`` secret is shown in the answer that creates or rotates it, never again (the
webhooks domain stores only a salt). Incoming senders' secrets are sealed and never shown. Test sends
and replays, which the webhooks domain does not audit, are audited here as ``user:<email>``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.kernel import pagination
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.integration_kit import (
    AREA,
    PAGE_SIZE,
    message,
    moment,
    not_found,
    position,
    pretty,
    record,
    text,
)
from leadflow.web.render import page as render
from leadflow.webhooks import service as webhooks

router = APIRouter()
WINDOWS = {24: "24 hours", 168: "7 days", 720: "30 days"}  # the statistics' windows, in hours
ENTITY = "webhook_endpoint"


def endpoint_path(endpoint_id: str) -> str:
    return f"/app/integrations/webhooks/{endpoint_id}"


def delivery_path(delivery_id: str) -> str:
    return f"/app/integrations/webhooks/deliveries/{delivery_id}"


def _catalogue() -> list[dict[str, Any]]:
    return [e for e in webhooks.event_catalogue() if e["type"] in webhooks.SUBSCRIBABLE]


def _values(form: FormData) -> dict[str, Any]:
    """The endpoint form's fields as the webhooks domain takes them (a blank rate limit: none)."""
    rate = text(form, "rate_limit")
    try:
        limit = float(rate) if rate else None
    except ValueError:
        raise ValueError(f"the rate limit {rate!r} is not a number") from None
    return {
        "url": text(form, "url"),
        "description": text(form, "description"),
        "event_types": [str(t) for t in form.getlist("event_types")],
        "rate_limit": limit,
    }


def _endpoints(request: Request, viewer: Viewer, web: Console, status: int = 200, **values: Any) -> Response:
    return render(
        request,
        "integrations/webhooks.html",
        viewer,
        status,
        title="Webhook endpoints",
        endpoints=webhooks.list_endpoints(web.ctx, after=None, limit=500),
        catalogue=_catalogue(),
        can_change=viewer.may_change(AREA),
        path=endpoint_path,
        **values,
    )


@router.get("/integrations/webhooks")
def endpoints(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _endpoints(request, viewer, web)


def _secret(request: Request, viewer: Viewer, endpoint: dict[str, Any], secret: str, why: str) -> Response:
    return render(
        request,
        "integrations/secret.html",
        viewer,
        201 if why == "created" else 200,
        title="Signing secret",
        endpoint=endpoint,
        secret=secret,
        why=why,
        path=endpoint_path,
    )


@router.post("/integrations/webhooks")
async def create(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Register an endpoint; the answer shows its secret, the only time it is shown."""
    form = await request.form()
    try:
        values = _values(form)
        made, secret = webhooks.create_endpoint(web.ctx, **values, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        given = {"url": text(form, "url"), "description": text(form, "description")}
        chosen = [str(t) for t in form.getlist("event_types")]
        return _endpoints(request, viewer, web, 422, error=message(exc), given=given, chosen=chosen)
    return _secret(request, viewer, made, secret, "created")


def _endpoint(web: Console, endpoint_id: str) -> dict[str, Any]:
    try:
        return webhooks.get_endpoint(web.ctx, endpoint_id)
    except NotFound as exc:
        raise not_found("endpoint", exc) from None


def _log_links(
    endpoint_id: str, status: str | None, rows: list[dict[str, Any]], more: bool
) -> dict[str, Any]:
    kept = {"status": status} if status else {}
    base = endpoint_path(endpoint_id)
    following = None
    if more:
        cursor = pagination.encode({"before": rows[-1]["id"]})
        following = f"{base}?{urlencode({**kept, 'cursor': cursor})}#log"
    return {"more": following, "first": f"{base}?{urlencode(kept)}#log"}


def _endpoint_page(
    request: Request, viewer: Viewer, web: Console, endpoint_id: str, status: int = 200, **values: Any
) -> Response:
    endpoint = _endpoint(web, endpoint_id)
    query = request.query_params
    chosen = query.get("status") or None
    if chosen is not None and chosen not in webhooks.STATUSES:
        raise PageError(400, "Bad filter", f"status is one of {', '.join(webhooks.STATUSES)}")
    raw_hours = query.get("hours") or "24"
    hours = int(raw_hours) if raw_hours.isdigit() else 0
    if hours not in WINDOWS:
        raise PageError(400, "Bad window", "the statistics window is 24, 168 or 720 hours")
    cursor = query.get("cursor")
    before = position(cursor, "before")
    rows = webhooks.endpoint_deliveries(
        web.ctx, endpoint_id, status=chosen, after=str(before) if before else None, limit=PAGE_SIZE + 1
    )
    links = _log_links(endpoint_id, chosen, rows[:PAGE_SIZE], len(rows) > PAGE_SIZE)
    return render(
        request,
        "integrations/webhook.html",
        viewer,
        status,
        title=f"Endpoint {endpoint['url']}",
        endpoint=endpoint,
        stats=webhooks.endpoint_stats(web.ctx, endpoint_id, window=timedelta(hours=hours)),
        hours=hours,
        windows=WINDOWS,
        deliveries=rows[:PAGE_SIZE],
        statuses=webhooks.STATUSES,
        chosen=chosen,
        more=links["more"],
        first=links["first"] if cursor else None,
        catalogue=_catalogue(),
        can_change=viewer.may_change(AREA),
        action=endpoint_path(endpoint_id),
        delivery=delivery_path,
        **values,
    )


@router.get("/integrations/webhooks/{endpoint_id}")
def endpoint_page(
    request: Request,
    endpoint_id: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _endpoint_page(request, viewer, web, endpoint_id, done=done)


def _back(endpoint_id: str, done: str) -> Response:
    return RedirectResponse(f"{endpoint_path(endpoint_id)}?done={done}", status_code=303)


@router.post("/integrations/webhooks/{endpoint_id}")
async def edit(
    request: Request,
    endpoint_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    _endpoint(web, endpoint_id)
    form = await request.form()
    try:
        webhooks.update_endpoint(web.ctx, endpoint_id, _values(form), actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _endpoint_page(request, viewer, web, endpoint_id, 422, error=message(exc))
    return _back(endpoint_id, "saved")


@router.post("/integrations/webhooks/{endpoint_id}/active")
async def switch(
    request: Request,
    endpoint_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Turn the endpoint on (``active=1``) or off (its waiting deliveries are cancelled)."""
    _endpoint(web, endpoint_id)
    on = text(await request.form(), "active") == "1"
    webhooks.update_endpoint(web.ctx, endpoint_id, {"active": on}, actor=viewer.actor)
    return _back(endpoint_id, "activated" if on else "deactivated")


@router.post("/integrations/webhooks/{endpoint_id}/rotate")
async def rotate(
    request: Request,
    endpoint_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """A new secret, shown in this answer only; the old one keeps signing for the grace hours given."""
    _endpoint(web, endpoint_id)
    raw = text(await request.form(), "grace_hours")
    try:
        hours = float(raw) if raw else None
        if hours is not None and not 0 <= hours <= 24 * 30:
            raise ValueError("the grace period is 0 to 720 hours")
        grace = None if hours is None else timedelta(hours=hours)
        made, secret = webhooks.rotate_secret(web.ctx, endpoint_id, grace=grace, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _endpoint_page(request, viewer, web, endpoint_id, 422, error=message(exc))
    return _secret(request, viewer, made, secret, "rotated")


@router.post("/integrations/webhooks/{endpoint_id}/test")
async def send_test(
    request: Request,
    endpoint_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    _endpoint(web, endpoint_id)
    try:
        queued = webhooks.send_test(web.ctx, endpoint_id)
    except LeadflowError as exc:
        return _endpoint_page(request, viewer, web, endpoint_id, 409, error=message(exc))
    record(web, viewer, f"{ENTITY}.test_sent", ENTITY, endpoint_id, delivery_id=queued)
    return RedirectResponse(f"{delivery_path(queued)}?done=test", status_code=303)


@router.post("/integrations/webhooks/{endpoint_id}/replay")
async def replay_failed(
    request: Request,
    endpoint_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Send again, as new deliveries, every failed delivery to the endpoint since a time (UTC)."""
    _endpoint(web, endpoint_id)
    try:
        since = moment(text(await request.form(), "since"))
        queued = webhooks.replay_failed(web.ctx, endpoint_id, since)
    except (LeadflowError, ValueError) as exc:
        return _endpoint_page(request, viewer, web, endpoint_id, 422, error=message(exc))
    record(
        web,
        viewer,
        f"{ENTITY}.failed_replayed",
        ENTITY,
        endpoint_id,
        since=since.isoformat(),
        count=len(queued),
    )
    return RedirectResponse(f"{endpoint_path(endpoint_id)}?done=replayed-{len(queued)}", status_code=303)


def _delivery(web: Console, delivery_id: str) -> dict[str, Any]:
    try:
        return webhooks.get_delivery(web.ctx, delivery_id)
    except NotFound as exc:
        raise not_found("delivery", exc) from None


@router.get("/integrations/webhooks/deliveries/{delivery_id}")
def delivery(
    request: Request,
    delivery_id: str,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    """One delivery: its state, the request as sent (headers, body) and the response (status, headers,
    the body's first 4 KB, the duration)."""
    found = _delivery(web, delivery_id)
    return render(
        request,
        "integrations/delivery.html",
        viewer,
        title=f"Delivery {found['event']}",
        d=found,
        body=pretty(found["request"]["body"]),
        done=done,
        can_change=viewer.may_change(AREA),
        endpoint=endpoint_path,
        path=delivery_path,
    )


@router.post("/integrations/webhooks/deliveries/{delivery_id}/replay")
async def replay(
    request: Request,
    delivery_id: str,
    viewer: Viewer = Depends(change(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Send a delivery again as a new one (a new ``webhook-id``); the page of the new one follows."""
    _delivery(web, delivery_id)
    try:
        queued = webhooks.replay_delivery(web.ctx, delivery_id)
    except LeadflowError as exc:
        raise PageError(409, "Not replayed", message(exc)) from None
    record(web, viewer, "webhook_delivery.replayed", "webhook_delivery", delivery_id, replay=queued)
    return RedirectResponse(f"{delivery_path(queued)}?done=replayed", status_code=303)


@router.get("/integrations/incoming")
def incoming(
    request: Request,
    source: str | None = None,
    status: str | None = None,
    cursor: str | None = None,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    """The configured senders (never their secrets) and what they delivered, newest first."""
    sources = webhooks.inbound_sources(web.ctx)
    source = source if source in {s.name for s in sources} else None
    status = status if status in ("processed", "failed") else None
    before = position(cursor, "id")
    rows = webhooks.list_inbound(
        web.ctx, source=source, status=status, before=str(before) if before else None, limit=PAGE_SIZE + 1
    )
    kept = {k: v for k, v in (("source", source), ("status", status)) if v}
    more = None
    if len(rows) > PAGE_SIZE:
        following = {**kept, "cursor": pagination.encode({"id": rows[PAGE_SIZE - 1]["id"]})}
        more = f"/app/integrations/incoming?{urlencode(following)}"
    return render(
        request,
        "integrations/incoming.html",
        viewer,
        title="Incoming webhooks",
        sources=[s.public() for s in sources],
        received=rows[:PAGE_SIZE],
        source=source,
        chosen=status,
        more=more,
        first=f"/app/integrations/incoming?{urlencode(kept)}" if cursor else None,
        done=done,
        can_change=viewer.may_change(AREA),
    )


@router.post("/integrations/incoming/{inbound_id}/replay")
async def replay_incoming(
    request: Request, inbound_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Process a failed received webhook again from its stored body."""
    try:
        found = webhooks.replay_inbound(web.ctx, inbound_id)
    except NotFound as exc:
        raise not_found("received webhook", exc) from None
    except LeadflowError as exc:
        raise PageError(409, "Not replayed", message(exc)) from None
    record(web, viewer, "inbound_webhook.replayed", "inbound_webhook", inbound_id, status=found["status"])
    return RedirectResponse(f"/app/integrations/incoming?done={found['status']}", status_code=303)
