"""The pipeline board's column totals count every deal, not the 500 cards shown: 620 deals of a sales
user (and 30 of another) written in one set-based insert, the sales user's columns are their 620
deals exactly (count, total, weighted), the admin's the pipeline's 650, while each board shows at most
500 cards. Both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.crm import service as crm
from leadflow.crm import stage_counters
from leadflow.crm.models import crm_deals
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.web.crm_board import BOARD_DEALS
from tests.integration.web.conftest import sign_in
from tests.integration.web.test_crm_pages import _column

MINE = 620
THEIRS = 30


def test_column_totals_are_exact_past_the_cards_shown(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    sales = user_of("sales")
    other = crm.create_user(
        ctx, crm.UserCreate(name="Olga Other", email="olga@example.com", role="sales"), actor="test"
    )
    crm.ensure_default_pipeline(ctx)
    default = next(p for p in crm.list_pipelines(ctx) if p.is_default)
    first, second = default.stages[0], default.stages[1]
    now = clock.now()

    def row(n: int, owner: str, stage: Any) -> dict[str, Any]:
        at = now - timedelta(minutes=n)  # the oldest deals are not among the cards
        return {
            "id": f"{'M' if owner == sales.id else 'T'}{n:025d}",
            "pipeline_id": default.id,
            "stage_id": stage.id,
            "status": "open",
            "title": f"Deal {n}",
            "value": 10 + n % 7,
            "currency": "EUR",
            "owner_id": owner,
            "created_at": at,
            "updated_at": at,
        }

    # mine: n even in the first stage, odd in the second; theirs all in the first
    rows = [row(n, sales.id, first if n % 2 == 0 else second) for n in range(MINE)]
    rows += [row(n, other.id, first) for n in range(THEIRS)]
    with ctx.db.write() as conn:
        conn.execute(crm_deals.insert(), rows)
        stage_counters.rebuild(conn, default.id)

    def expected(owner: str | None, stage: Any) -> tuple[int, str, str]:
        picked = [r for r in rows if r["stage_id"] == stage.id and owner in (None, r["owner_id"])]
        total = sum(int(r["value"]) for r in picked)
        weighted = total * stage.probability / 100
        return len(picked), f"{total:,.2f} EUR", f"{weighted:,.2f} EUR"

    sign_in(client, "sales@example.com")
    board = client.get("/app/crm/board").text
    assert board.count('class="deal') == BOARD_DEALS  # the cards stay the newest 500
    assert _column(board, first.id) == expected(sales.id, first)
    assert _column(board, second.id) == expected(sales.id, second)
    assert _column(board, first.id)[0] == MINE // 2  # not the 250 cards of that column

    with TestClient(client.app) as admin:
        sign_in(admin, "admin@example.com")
        seen = admin.get("/app/crm/board").text
        assert seen.count('class="deal') == BOARD_DEALS
        assert _column(seen, first.id) == expected(None, first)
        assert _column(seen, second.id) == expected(None, second)

    with ctx.db.read() as conn:  # the inserted rows are all there (the test's own premise)
        assert conn.execute(sa.select(sa.func.count()).select_from(crm_deals)).scalar_one() == MINE + THEIRS
