"""A journey's ``webhook`` step may not name an internal address: refused when saved (``422``, nothing
stored), over HTTP, on both databases; the allow-list admits it."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.journeys import service
from leadflow.journeys.models import journeys
from leadflow.journeys.schemas import JourneyCreate
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

INTERNAL = [
    "http://127.0.0.1:9000/hook",
    "http://localhost/hook",
    "http://127.1/hook",
    "http://2130706433/hook",
    "http://0x7f.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://169.254.169.254/latest/meta-data/iam/",
    "http://10.0.0.5/hook",
]


def _definition(url: str) -> dict[str, Any]:
    return {
        "name": "Hot lead",
        "trigger": {"type": "event", "event": "Demo Requested"},
        "steps": [
            {"id": "wait", "type": "wait", "duration": "1h", "next": "hook"},
            {"id": "hook", "type": "webhook", "url": url, "data": {"source": "journey"}},
        ],
    }


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _stored(ctx: AppContext) -> int:
    with ctx.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(journeys)).scalar_one())


@pytest.mark.parametrize("url", INTERNAL)
def test_a_webhook_step_to_an_internal_address_is_refused_when_saved(
    ctx: AppContext, client: TestClient, admin_key: str, url: str
) -> None:
    answer = client.post("/api/v1/journeys", json={"definition": _definition(url)}, headers=_auth(admin_key))
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_journey"
    assert error["message"].startswith("steps.1.url: blocked: ")
    assert [problem["path"] for problem in error["details"]] == ["steps.1.url"]
    assert _stored(ctx) == 0


def test_editing_a_journey_to_an_internal_address_is_refused(
    ctx: AppContext, client: TestClient, admin_key: str
) -> None:
    public = _definition("https://hooks.example.com/leads")
    created = client.post("/api/v1/journeys", json={"definition": public}, headers=_auth(admin_key))
    assert created.status_code == 201
    journey_id = created.json()["id"]
    patched = client.patch(
        f"/api/v1/journeys/{journey_id}",
        json={"definition": _definition("http://[::1]:8080/")},
        headers=_auth(admin_key),
    )
    assert (patched.status_code, patched.json()["error"]["code"]) == (422, "invalid_journey")
    assert service.get(ctx, journey_id).definition == public


def test_the_allow_list_admits_an_internal_receiver(ctx: AppContext) -> None:
    with pytest.raises(Invalid):
        service.create(ctx, JourneyCreate(definition=_definition("http://10.0.0.5/hook")), actor="test")
    ctx.settings.network_allow = "10.0.0.0/8"
    saved = service.create(ctx, JourneyCreate(definition=_definition("http://10.0.0.5/hook")), actor="test")
    assert service.get(ctx, saved.id).definition["steps"][1]["url"] == "http://10.0.0.5/hook"
    assert _stored(ctx) == 1
