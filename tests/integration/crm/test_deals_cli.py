"""``leadflow crm pipelines list`` and ``leadflow crm deals list|add|move``, on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.crm.models import crm_stage_days, crm_stage_deal_days


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    return CliRunner()


def test_pipelines_list_then_deals_add_move_and_list(
    cli: CliRunner, api: TestClient, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    listed = cli.invoke(app, ["crm", "pipelines", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert (
        "Course sales\tyes\tinterest:10%, consultation booked:40%, proposal:70%, won:100%, lost:0%"
        in listed.stdout
    )
    added = cli.invoke(
        app,
        [
            "crm",
            "deals",
            "add",
            "--title",
            "Bundle",
            "--value",
            "99.90",
            "--currency",
            "EUR",
            "--email",
            "ann@example.com",
        ],
    )
    assert added.exit_code == 0, added.output
    deal_id = added.stdout.strip().splitlines()[-1]
    refused = cli.invoke(app, ["crm", "deals", "move", deal_id, "lost"])
    assert refused.exit_code == 2
    assert "needs a reason" in refused.output
    bad = cli.invoke(app, ["crm", "deals", "add", "--title", "X", "--value", "1", "--currency", "euro"])
    assert bad.exit_code == 2
    moved = cli.invoke(app, ["crm", "deals", "move", deal_id, "won", "--reason", "paid"])
    assert moved.exit_code == 0, moved.output
    deals = cli.invoke(app, ["crm", "deals", "list", "--status", "won"], terminal_width=200)
    assert deals.exit_code == 0, deals.output
    assert f"{deal_id}\tBundle\twon\twon\t99.9000\tEUR" in deals.stdout
    assert api.get(f"/api/v1/crm/deals/{deal_id}").json()["reason"] == "paid"
    assert cli.invoke(app, ["crm", "deals", "move", "nope", "won", "--reason", "x"]).exit_code == 2


def test_stats_rebuild_recomputes_the_counters_from_the_stage_history(
    cli: CliRunner, api: TestClient, database_url: str
) -> None:
    made = api.post("/api/v1/crm/deals", json={"title": "A", "value": "10", "currency": "EUR"}).json()
    api.patch(f"/api/v1/crm/deals/{made['id']}", json={"stage": "proposal"})
    kept = api.get("/api/v1/crm/pipeline/stats").json()
    assert [s["reached"] for s in kept[0]["stages"]][:3] == [1, 0, 1]
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:  # as a bulk load that bypassed the API would leave them
        conn.execute(crm_stage_days.delete())
        conn.execute(crm_stage_deal_days.delete())
    engine.dispose()
    assert [s["reached"] for s in api.get("/api/v1/crm/pipeline/stats").json()[0]["stages"]][:3] == [0, 0, 0]
    rebuilt = cli.invoke(app, ["crm", "stats", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert api.get("/api/v1/crm/pipeline/stats").json() == kept
