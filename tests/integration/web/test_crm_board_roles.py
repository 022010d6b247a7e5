"""The pipeline board for a ``sales`` user: only the deals they own, column totals summed from those,
another's deal not movable (403) — while an admin still sees every deal and the pipeline's stats; their
lead's page lists only their own deals of the contact. Both databases, through the pages."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm import deals
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in
from tests.integration.web.test_crm_pages import _column
from tests.support.events import send


def test_a_sales_user_sees_and_moves_only_their_own_deals(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    sales = user_of("sales")
    other = crm.create_user(
        ctx, crm.UserCreate(name="Olga Other", email="olga@example.com", role="sales"), actor="test"
    )
    crm.ensure_default_pipeline(ctx)
    default = next(p for p in crm.list_pipelines(ctx) if p.is_default)
    first, following = default.stages[0], default.stages[1]

    def deal(title: str, value: str, owner: str) -> crm.Deal:
        data = deals.DealCreate(title=title, value=Decimal(value), currency="EUR", owner_id=owner)
        return deals.create(ctx, data, actor="test")

    mine = deal("Mine", "300", sales.id)
    theirs = deal("Theirs", "5000", other.id)

    csrf = sign_in(client, "sales@example.com")
    board = client.get("/app/crm/board").text
    assert 'id="deal-' + mine.id + '"' in board
    assert "Theirs" not in board
    assert 'id="deal-' + theirs.id + '"' not in board
    assert _column(board, first.id) == (1, "300.00 EUR", "30.00 EUR")  # not the pipeline's 5,300

    refused = client.post(
        f"/app/crm/deals/{theirs.id}/move", data={"stage": following.id, "pipeline": default.id, "csrf": csrf}
    )
    assert refused.status_code == 403
    assert crm.get_deal(ctx, theirs.id).stage_id == first.id
    moved = client.post(
        f"/app/crm/deals/{mine.id}/move", data={"stage": following.id, "pipeline": default.id, "csrf": csrf}
    )
    assert moved.status_code == 200  # the board again, after the 303
    assert _column(moved.text, following.id) == (1, "300.00 EUR", "120.00 EUR")
    assert _column(moved.text, first.id) == (0, "0", "0")

    with TestClient(client.app) as admin:
        sign_in(admin, "admin@example.com")
        seen = admin.get("/app/crm/board").text
        assert "Theirs" in seen
        assert _column(seen, first.id) == (1, "5,000.00 EUR", "500.00 EUR")


def test_a_sales_users_lead_page_lists_only_their_own_deals_of_the_contact(
    client: TestClient, ctx: AppContext, processor: EventProcessor, user_of: Callable[..., crm.User]
) -> None:
    sales = user_of("sales")
    other = crm.create_user(
        ctx, crm.UserCreate(name="Olga Other", email="olga@example.com", role="sales"), actor="test"
    )
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com"}})
    processor.drain()
    crm.assign_lead(ctx, "ann@example.com", crm.LeadOwnerChange(owner_id=sales.id), actor="test")
    for title, owner in (("Mine", sales.id), ("Theirs", other.id)):
        data = deals.DealCreate(
            title=title, value=Decimal(100), currency="EUR", owner_id=owner, email="ann@example.com"
        )
        deals.create(ctx, data, actor="test")
    sign_in(client, "sales@example.com")
    page = client.get("/app/crm/leads/ann@example.com")
    assert page.status_code == 200
    assert "Mine" in page.text
    assert "Theirs" not in page.text
