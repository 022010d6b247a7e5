"""The console's Integrations area (``/app/integrations``): an overview linking its pages, and the API
keys (list, create — the secret shown in that answer only —, revoke). The webhook, connector and form
pages are their own modules, included in :data:`router`.

``admin`` changes, ``viewer`` reads (and gets no form), the other roles get the 403 page. Every
change goes through the domains' services with the actor ``user:<email>``.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.auth import service as keys
from leadflow.capture import service as capture
from leadflow.connectors import service as connectors
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.kernel.http import state
from leadflow.web import integration_connectors, integration_forms, integration_hooks
from leadflow.web.access import Console, Viewer, change, console, page
from leadflow.web.integration_kit import AREA, message, not_found
from leadflow.web.render import page as render
from leadflow.webhooks import service as webhooks

router = APIRouter()
COUNTED = 500  # the overview counts up to this many of each (then shows "500+")


@router.get("/integrations")
def overview(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """What is set up: endpoints, incoming senders, connectors (how many alert), forms, live keys."""
    ctx = web.ctx
    endpoints = webhooks.list_endpoints(ctx, after=None, limit=COUNTED + 1)
    found = connectors.listing(ctx, after=None, limit=COUNTED + 1)
    with ctx.db.read() as conn:
        live = keys.list_keys(conn, include_revoked=False)
    counts = {
        "endpoints": len(endpoints),
        "inactive": sum(1 for e in endpoints if not e["active"]),
        "sources": len(webhooks.inbound_sources(ctx)),
        "connectors": len(found),
        "forms": len(capture.listing(ctx, after=None, limit=COUNTED + 1)),
        "keys": len(live),
    }
    return render(
        request,
        "integrations/index.html",
        viewer,
        title="Integrations",
        counts=counts,
        most=COUNTED,
        users=viewer.may("users"),
    )


def _keys(request: Request, viewer: Viewer, web: Console, status: int = 200, **values: object) -> Response:
    with web.ctx.db.read() as conn:
        found = keys.list_keys(conn)
    return render(
        request,
        "integrations/keys.html",
        viewer,
        status,
        title="API keys",
        keys=found,
        scopes=keys.SCOPES,
        can_change=viewer.may_change(AREA),
        **values,
    )


@router.get("/integrations/keys")
def api_keys(
    request: Request,
    done: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _keys(request, viewer, web, done=done)


@router.post("/integrations/keys")
async def create_key(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Create a key: this answer is the only one that shows its secret (it is stored as a digest)."""
    form = await request.form()
    name = str(form.get("name") or "")
    chosen = [str(s) for s in form.getlist("scopes")]
    try:
        with web.ctx.db.write() as conn:
            made, secret = keys.create_key(conn, web.ctx.clock, name=name, scopes=chosen, actor=viewer.actor)
    except LeadflowError as exc:
        return _keys(request, viewer, web, 422, error=message(exc), key_name=name, chosen=chosen)
    return _keys(request, viewer, web, 201, created=made, secret=secret)


@router.post("/integrations/keys/{key_id}/revoke")
async def revoke_key(
    request: Request, key_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    try:
        with web.ctx.db.write() as conn:
            keys.revoke_key(conn, web.ctx.clock, key_id, actor=viewer.actor)
    except NotFound as exc:
        raise not_found("API key", exc) from None
    state(request).keys.invalidate()  # the API's key cache forgets it now, in this process
    return RedirectResponse("/app/integrations/keys?done=revoked", status_code=303)


router.include_router(integration_hooks.router)
router.include_router(integration_connectors.router)
router.include_router(integration_forms.router)
