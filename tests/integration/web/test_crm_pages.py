"""The console's CRM pages: the leads list and a lead's page (status, owner, tasks, logging), the
pipeline board (columns with totals, moving a deal with its form), roles (sales: only their leads;
viewer: no form, a POST refused) and CSRF — on both databases, through the pages' forms."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm import deals, pipelines
from leadflow.crm import service as crm
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.web import crm_pages
from tests.integration.web.conftest import sign_in
from tests.support.events import send

ADMIN = "user:admin@example.com"


def _leads(ctx: AppContext, processor: EventProcessor, *emails: str) -> None:
    send(ctx, *({"type": "identify", "userId": e, "traits": {"email": e}} for e in emails))
    processor.drain()


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def _column(html: str, stage_id: str) -> tuple[int, str, str]:
    """A board column's header: count, total and weighted value as shown."""
    found = re.search(
        rf'data-stage="{stage_id}".*?data-count>(\d+)<.*?data-total>([^<]*)<.*?data-weighted>([^<]*)<',
        html,
        re.S,
    )
    assert found, stage_id
    return int(found.group(1)), found.group(2), found.group(3)


def test_leads_list_lead_page_status_tasks_and_roles(
    client: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    monkeypatch: pytest.MonkeyPatch,
    user_of: Callable[..., crm.User],
) -> None:
    user_of("admin")
    sales = user_of("sales")
    user_of("viewer")
    _leads(ctx, processor, "ann@example.com", "bob@example.com")
    crm.assign_lead(ctx, "ann@example.com", crm.LeadOwnerChange(owner_id=sales.id), actor="test")
    csrf = sign_in(client, "admin@example.com")

    listing = client.get("/app/crm/leads")
    assert listing.status_code == 200
    assert 'data-lead="ann@example.com"' in listing.text
    assert 'data-lead="bob@example.com"' in listing.text
    found = client.get("/app/crm/leads", params={"q": "bob"}).text
    assert 'data-lead="bob@example.com"' in found
    assert 'data-lead="ann@example.com"' not in found
    mine = client.get("/app/crm/leads", params={"owner": sales.id}).text
    assert 'data-lead="ann@example.com"' in mine
    assert 'data-lead="bob@example.com"' not in mine
    assert 'href="/app/crm/leads/bob@example.com"' in listing.text
    monkeypatch.setattr(crm_pages, "PAGE_SIZE", 1)
    one = client.get("/app/crm/leads", params={"status": "new"}).text
    following = re.search(r'href="([^"]+)" rel="next"', one)
    assert following is not None
    two = client.get(following.group(1).replace("&amp;", "&")).text
    assert [one.count("data-lead="), two.count("data-lead=")] == [1, 1]
    assert sorted(re.findall(r'data-lead="([^"]+)"', one + two)) == ["ann@example.com", "bob@example.com"]
    assert 'href="/app/crm/leads?status=new">First page' in two
    assert 'rel="next"' not in two
    monkeypatch.undo()

    url = "/app/crm/leads/bob@example.com"
    assert 'action="/app/crm/leads/bob@example.com/status"' in client.get(url).text
    refused = client.post(f"{url}/status", data={"status": "lost", "reason": "", "csrf": csrf})
    assert refused.status_code == 422
    assert "needs a reason" in refused.text
    assert crm.get_lead(ctx, "bob@example.com").status == "new"
    done = client.post(f"{url}/status", data={"status": "lost", "reason": "no budget", "csrf": csrf})
    assert done.status_code == 200
    assert "data-reason>no budget<" in done.text
    contacted = client.post(f"{url}/status", data={"status": "contacted", "reason": "ignored", "csrf": csrf})
    assert contacted.status_code == 200
    lead = crm.get_lead(ctx, "bob@example.com")
    assert (lead.status, lead.reason) == ("contacted", None)
    assert _audit(ctx, lead.contact_id) == [("lead.status_changed", ADMIN)] * 2

    client.post(f"{url}/owner", data={"owner": sales.id, "csrf": csrf})
    assert crm.get_lead(ctx, "bob@example.com").owner_id == sales.id
    clock.advance(timedelta(minutes=5))
    client.post(f"{url}/activities", data={"kind": "call", "subject": "Intro call", "csrf": csrf})
    form = {"kind": "task", "subject": "Send offer", "due": "2030-01-02T10:00", "csrf": csrf}
    client.post(f"{url}/activities", data=form)
    task = crm.list_activities(
        ctx, email="bob@example.com", owner_id=None, kind="task", open_tasks=False, after=None, limit=5
    )[0]
    assert task.due_at is not None
    assert task.due_at.year == 2030
    assert task.done_at is None
    page = client.post(f"{url}/tasks/{task.id}", data={"done": "1", "csrf": csrf}).text
    assert crm.get_activity(ctx, task.id).done_at is not None
    timeline = page[page.index('id="timeline-h"') :]
    assert timeline.index("Intro call") < timeline.index("owner assigned")  # newest first
    assert f'id="done-{task.id}" name="done" value="1" checked' in page
    assert client.post(f"{url}/status", data={"status": "qualified"}).status_code == 403  # no CSRF token
    assert crm.get_lead(ctx, "bob@example.com").status == "contacted"

    ann = crm.get_lead(ctx, "ann@example.com")
    crm.assign_lead(ctx, "bob@example.com", crm.LeadOwnerChange(owner_id=None), actor="test")
    with TestClient(client.app) as seller:
        token = sign_in(seller, "sales@example.com")
        theirs = seller.get("/app/crm/leads").text
        assert 'data-lead="ann@example.com"' in theirs
        assert 'data-lead="bob@example.com"' not in theirs
        assert seller.get("/app/crm/leads", params={"owner": ""}).text.count("data-lead=") == 1
        assert seller.get(url).status_code == 403
        assert seller.post(f"{url}/status", data={"status": "new", "csrf": token}).status_code == 403
        assert seller.get("/app/users").status_code == 403
        ok = seller.post("/app/crm/leads/ann@example.com/status", data={"status": "qualified", "csrf": token})
        assert ok.status_code == 200
        assert _audit(ctx, ann.contact_id)[-1] == ("lead.status_changed", "user:sales@example.com")
    with TestClient(client.app) as viewer:
        token = sign_in(viewer, "viewer@example.com")
        seen = viewer.get(url)
        assert seen.status_code == 200
        assert 'method="post" action="/app/crm' not in seen.text
        assert viewer.post(f"{url}/status", data={"status": "new", "csrf": token}).status_code == 403
    assert crm.get_lead(ctx, "bob@example.com").status == "contacted"


def test_board_columns_totals_moves_and_roles(
    client: TestClient, ctx: AppContext, processor: EventProcessor, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    sales = user_of("sales")
    user_of("viewer")
    _leads(ctx, processor, "ann@example.com")
    crm.ensure_default_pipeline(ctx)
    second = pipelines.create(
        ctx,
        pipelines.PipelineIn.model_validate(
            {
                "name": "Coaching",
                "stages": [{"name": n, "probability": p} for n, p in (("a", 20), ("b", 50))]
                + [
                    {"name": "done", "probability": 100, "kind": "won"},
                    {"name": "no", "probability": 0, "kind": "lost"},
                ],
            }
        ),
        actor="test",
    )
    default = next(p for p in crm.list_pipelines(ctx) if p.is_default)
    first, following, won = default.stages[0], default.stages[1], default.stages[3]
    made = [
        deals.create(
            ctx,
            deals.DealCreate(
                title=title, value=Decimal(value), currency="EUR", owner_id=sales.id, email=email
            ),
            actor="test",
        )
        for title, value, email in (("Bundle", "1000", "ann@example.com"), ("Single", "200", None))
    ]
    csrf = sign_in(client, "admin@example.com")

    board = client.get("/app/crm/board").text
    assert f'<option value="{second.id}">Coaching</option>' in board
    assert _column(board, first.id) == (2, "1,200.00 EUR", "120.00 EUR")
    assert _column(board, following.id) == (0, "0", "0")
    assert 'id="deal-' + made[0].id + '"' in board
    assert "Sales User" in board
    assert 'src="/app/static/board.js"' in board
    assert client.get("/app/static/board.js").status_code == 200

    moved = client.post(
        f"/app/crm/deals/{made[0].id}/move",
        data={"stage": following.id, "pipeline": default.id, "csrf": csrf},
    )
    assert moved.status_code == 200  # the board again, after the 303
    assert _column(moved.text, first.id) == (1, "200.00 EUR", "20.00 EUR")
    assert _column(moved.text, following.id) == (1, "1,000.00 EUR", "400.00 EUR")
    assert _audit(ctx, made[0].id)[-1] == ("crm.deal_stage_changed", ADMIN)

    to_won = {"stage": won.id, "pipeline": default.id, "csrf": csrf}
    refused = client.post(f"/app/crm/deals/{made[1].id}/move", data=to_won)
    assert refused.status_code == 422
    assert "needs a reason" in refused.text
    assert (
        crm.list_deals(
            ctx,
            pipeline_id=None,
            stage_id=won.id,
            owner_id=None,
            email=None,
            status=None,
            before=None,
            limit=5,
        )
        == []
    )
    landed = client.post(f"/app/crm/deals/{made[1].id}/move", data={**to_won, "reason": "paid"})
    assert _column(landed.text, won.id) == (1, "200.00 EUR", "200.00 EUR")
    assert client.post(f"/app/crm/deals/{made[1].id}/move", data={"stage": first.id}).status_code == 403
    other = client.get("/app/crm/board", params={"pipeline": second.id}).text
    assert _column(other, second.stages[0].id) == (0, "0", "0")
    assert "Bundle" not in other

    with TestClient(client.app) as seller:
        sign_in(seller, "sales@example.com")
        assert "Bundle" in seller.get("/app/crm/board").text
    with TestClient(client.app) as viewer:
        token = sign_in(viewer, "viewer@example.com")
        seen = viewer.get("/app/crm/board").text
        assert "Bundle" in seen
        assert "/move" not in seen
        assert "draggable" not in seen
        answer = viewer.post(f"/app/crm/deals/{made[0].id}/move", data={"stage": first.id, "csrf": token})
        assert answer.status_code == 403
    assert (
        crm.list_deals(
            ctx,
            pipeline_id=None,
            stage_id=following.id,
            owner_id=None,
            email=None,
            status=None,
            before=None,
            limit=5,
        )[0].id
        == made[0].id
    )
