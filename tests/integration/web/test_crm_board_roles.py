"""The pipeline board for a ``sales`` user: only the deals they own, column totals summed from those,
another's deal not movable (403) — while an admin still sees every deal and the pipeline's stats. Both
databases, through the pages."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from fastapi.testclient import TestClient

from leadflow.crm import deals
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in
from tests.integration.web.test_crm_pages import _column


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
