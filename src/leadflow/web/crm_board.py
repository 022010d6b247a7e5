"""The pipeline board: one column per stage of a chosen pipeline, each open/won/lost deal a card.

A column's header shows its count, total and weighted value (probability x value, per currency) from
the CRM's pipeline stats (:func:`leadflow.crm.service.pipeline_stats`, the API's numbers). A deal moves
with its card's "Move to" form (a real POST: it works without JavaScript and from the keyboard); the
board's script (``static/board.js``) posts that same form when a card is dropped on a column. Won and
lost stages need a reason: the form carries it, and a drop there opens the form instead of moving.

The cards are the newest 500 deals of the pipeline; the column totals are exact whatever the number
of deals (never summed from the cards). A ``sales`` user's board holds only the deals they own, and its
column totals are those of all their deals (:func:`leadflow.crm.service.owner_pipeline_stats`: one
grouped statement); moving another's deal answers the 403 page. The other roles see every deal and
the pipeline stats' numbers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.crm import service as crm
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.crm_pages import AREA, message
from leadflow.web.render import page as render

router = APIRouter()
BOARD_DEALS = 500  # cards shown per pipeline (newest first); the API lists the rest


def _owner(viewer: Viewer) -> str | None:
    """The owner whose deals the board holds: a sales user's own, everyone's for the other roles."""
    return viewer.user.id if viewer.role == "sales" else None


def _board(
    request: Request, web: Console, viewer: Viewer, chosen: str | None, status: int = 200, **values: Any
) -> Response:
    pipelines = crm.list_pipelines(web.ctx)
    if not pipelines:
        return render(request, "crm/board.html", viewer, status, title="Pipeline", pipeline=None, **values)
    pipeline = next((p for p in pipelines if p.id == chosen), None)
    if pipeline is None:
        pipeline = next((p for p in pipelines if p.is_default), pipelines[0])
    owner = _owner(viewer)
    if owner is None:
        stats = crm.pipeline_stats(web.ctx, pipeline_id=pipeline.id, start=None, end=None)[0]
    else:
        stats = crm.owner_pipeline_stats(web.ctx, pipeline_id=pipeline.id, owner_id=owner)
    deals = crm.list_deals(
        web.ctx,
        pipeline_id=pipeline.id,
        stage_id=None,
        owner_id=owner,
        email=None,
        status=None,
        before=None,
        limit=BOARD_DEALS + 1,
    )
    cards: dict[str, list[crm.Deal]] = {stage.id: [] for stage in pipeline.stages}
    for deal in deals[:BOARD_DEALS]:
        cards.setdefault(deal.stage_id, []).append(deal)
    users = crm.list_users(web.ctx, after=None, limit=500)
    return render(
        request,
        "crm/board.html",
        viewer,
        status,
        title=f"Pipeline: {pipeline.name}",
        pipelines=pipelines,
        pipeline=pipeline,
        columns=stats.stages,
        cards=cards,
        cut=len(deals) > BOARD_DEALS,
        names={u.id: u.name for u in users},
        can_change=viewer.may_change(AREA),
        **values,
    )


@router.get("/crm/board")
def board(
    request: Request,
    pipeline: str | None = None,
    moved: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    return _board(request, web, viewer, pipeline, moved=moved)


@router.post("/crm/deals/{deal_id}/move")
async def move(
    request: Request, deal_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    """Move a deal to a stage of its pipeline (``stage``: the stage id; ``reason`` for won/lost)."""
    form = await request.form()
    stage, reason = (str(form.get(k) or "").strip() for k in ("stage", "reason"))
    pipeline = str(form.get("pipeline") or "") or None
    try:
        if _owner(viewer) not in (None, crm.get_deal(web.ctx, deal_id).owner_id):
            raise PageError(403, "Not your deal", "A sales user moves only the deals they own.")
        data = crm.DealFields.model_validate({"stage": stage or None, "reason": reason or None})
        if data.stage is None:
            raise ValueError("choose the stage to move the deal to")
        deal = crm.update_deal(web.ctx, deal_id, data, actor=viewer.actor)
    except NotFound:
        raise PageError(404, "No such deal", f"There is no deal {deal_id}.") from None
    except (LeadflowError, ValueError) as exc:
        return _board(request, web, viewer, pipeline, 422, error=message(exc), failed=deal_id)
    where = urlencode({"pipeline": deal.pipeline_id, "moved": deal.id})
    return RedirectResponse(f"/app/crm/board?{where}#deal-{deal.id}", status_code=303)
