"""Marketing email needs the sender's postal address (CAN-SPAM): without ``LEADFLOW_BRAND_ADDRESS``,
publishing a marketing journey or scheduling a broadcast is a ``422 missing_postal_address``; journeys
that send no marketing email, and the simulator, are not affected. Over HTTP, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.kernel.context import AppContext
from leadflow.messaging import templates
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from tests.support import journeys as j
from tests.support.http import bearer


def _journey(kind: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": f"A {kind} journey",
        "trigger": {"type": "event", "event": "Signed Up"},
        "settings": {"kind": kind},
        "steps": list(steps) or [{"id": "hello", "type": "send_email", "template": "hello"}],
    }


@pytest.fixture
def api(client: TestClient, admin_key: str, ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    """The API of an instance whose operator set no postal address."""
    monkeypatch.setattr(ctx.settings, "brand_address", "")
    j.template(ctx, "hello")
    client.headers.update(bearer(admin_key))
    return client


def _refused(answer: Any) -> None:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "missing_postal_address"
    assert "LEADFLOW_BRAND_ADDRESS" in error["message"]


def test_a_marketing_journey_is_not_published_without_a_postal_address(
    api: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.post("/api/v1/journeys", json={"key": "news", "definition": _journey("marketing")})
    assert created.status_code == 201, created.text
    _refused(api.post("/api/v1/journeys/news/publish"))
    assert api.get("/api/v1/journeys/news").json()["status"] == "draft"

    monkeypatch.setattr(ctx.settings, "brand_address", "1 Main St, Springfield")
    published = api.post("/api/v1/journeys/news/publish")
    assert (published.status_code, published.json()["status"]) == (200, "active")


def test_editing_an_active_marketing_journey_is_refused_too(
    api: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "brand_address", "1 Main St, Springfield")
    api.post("/api/v1/journeys", json={"key": "news", "definition": _journey("marketing")})
    assert api.post("/api/v1/journeys/news/publish").status_code == 200
    monkeypatch.setattr(ctx.settings, "brand_address", "")
    edited = _journey("marketing")
    edited["name"] = "Renamed"
    _refused(api.patch("/api/v1/journeys/news", json={"definition": edited}))
    assert api.get("/api/v1/journeys/news").json()["version"] == 1


@pytest.mark.parametrize(
    "definition",
    [
        _journey("transactional"),
        _journey("marketing", {"id": "tag", "type": "add_tag", "tags": ["new"]}),
    ],
    ids=["transactional-email", "marketing-without-email"],
)
def test_journeys_without_marketing_email_publish_without_an_address(
    api: TestClient, definition: dict[str, Any]
) -> None:
    api.post("/api/v1/journeys", json={"key": "other", "definition": definition})
    published = api.post("/api/v1/journeys/other/publish")
    assert (published.status_code, published.json()["status"]) == (200, "active"), published.text


def test_the_simulator_runs_a_marketing_journey_without_an_address(api: TestClient) -> None:
    api.post("/api/v1/journeys", json={"key": "news", "definition": _journey("marketing")})
    simulated = api.post(
        "/api/v1/journeys/news/simulate", json={"contact": {"email": "ann@example.com"}, "horizon": "1d"}
    )
    assert simulated.status_code == 200, simulated.text
    assert [m["step"] for m in simulated.json()["timeline"] if m["email"]] == ["hello"]


def test_a_broadcast_is_not_scheduled_without_a_postal_address(
    api: TestClient, ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments.create(
        ctx, SegmentCreate(name="All", rules={"field": "email", "op": "is_set"}), actor="t", key="all"
    )
    templates.create(
        ctx, templates.TemplateCreate(key="news", name="News", subject="News", html="<p>News</p>"), actor="t"
    )
    created = api.post("/api/v1/broadcasts", json={"name": "March", "segment": "all", "template": "news"})
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    _refused(api.post(f"/api/v1/broadcasts/{broadcast_id}/schedule"))
    assert api.get(f"/api/v1/broadcasts/{broadcast_id}").json()["status"] == "draft"

    monkeypatch.setattr(ctx.settings, "brand_address", "1 Main St, Springfield")
    scheduled = api.post(f"/api/v1/broadcasts/{broadcast_id}/schedule")
    assert (scheduled.status_code, scheduled.json()["status"]) == (200, "scheduled")
