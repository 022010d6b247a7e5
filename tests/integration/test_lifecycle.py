"""Lifecycle automation: entering the MQL segment makes a contact an MQL; never backwards automatically."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.context import AppContext
from leadflow.lifecycle import service as lifecycle
from leadflow.scoring import service as scoring
from leadflow.scoring.definitions import ScoringRuleCreate
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer


@pytest.fixture
def api(client: TestClient, admin_key: str, ctx: AppContext) -> TestClient:
    lifecycle.ensure_defaults(ctx)
    client.headers.update(bearer(admin_key))
    return client


def _stage_changes(ctx: AppContext, contact_id: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.properties)
            .where(events.c.contact_id == contact_id, events.c.event == "leadflow.stage_changed")
            .order_by(events.c.id)
        )
        return [dict(row[0]) for row in rows]


def test_the_default_definition_is_readable_and_editable(api: TestClient) -> None:
    definition = api.get("/api/v1/lifecycle/mql").json()
    assert {"field": "score.engagement", "op": "gte", "value": 70} in definition["mql"]["all"]
    assert {"event": "Content Downloaded", "count": {"gte": 3}} in definition["mql"]["all"]
    assert {"field": "sessions", "op": "gte", "value": 5} in definition["mql"]["all"]
    assert definition["icp"]["all"][0] == {"field": "email", "op": "is_set"}
    bad = api.put("/api/v1/lifecycle/mql", json={"mql": {"field": "score", "op": "around", "value": 1}})
    assert bad.status_code == 422
    changed = api.put(
        "/api/v1/lifecycle/mql", json={"icp": {"field": "traits.role", "op": "eq", "value": "cto"}}
    )
    assert changed.json()["icp"] == {"field": "traits.role", "op": "eq", "value": "cto"}
    assert changed.json()["mql"] == definition["mql"]


def test_a_contact_meeting_the_default_definition_becomes_an_mql(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    scoring.create_rule(
        ctx,
        ScoringRuleCreate(name="Open", kind="behavioral", event="leadflow.email_opened", points=25),
        actor="test",
    )
    start = ctx.clock.now() - timedelta(days=2)
    visits = [
        {
            "type": "page",
            "userId": "u1",
            "name": "Home",
            "timestamp": (start + timedelta(hours=h)).isoformat(),
        }
        for h in range(5)
    ]  # five visits an hour apart: five sessions
    downloads = [{"type": "track", "userId": "u1", "event": "Content Downloaded"} for _ in range(3)]
    opens = [{"type": "track", "userId": "u1", "event": "leadflow.email_opened"} for _ in range(3)]
    send(
        ctx,
        *visits,
        {"type": "identify", "userId": "u1", "traits": {"email": "lead@example.com"}},
        *downloads,
    )
    processor.drain()
    assert by_user(ctx, "u1")["lifecycle_stage"] == "lead"
    send(ctx, *opens)  # engagement 75 ≥ 70: the last condition falls into place
    processor.drain()
    contact = by_user(ctx, "u1")
    assert contact["sessions"] >= 5
    assert contact["lifecycle_stage"] == "mql"
    assert _stage_changes(ctx, contact["id"]) == [
        {"from": "visitor", "to": "lead"},
        {"from": "lead", "to": "mql"},
    ]


def test_promotion_never_moves_a_contact_backwards(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    api.put("/api/v1/lifecycle/mql", json={"mql": {"event": "Consultation Requested"}})
    customer = api.post(
        "/api/v1/contacts", json={"user_id": "c1", "email": "c@example.com", "lifecycle_stage": "customer"}
    ).json()
    send(
        ctx,
        {"type": "track", "userId": "c1", "event": "Consultation Requested"},
        {"type": "track", "userId": "v1", "event": "Consultation Requested"},
    )
    processor.drain()
    assert by_user(ctx, "c1")["lifecycle_stage"] == "customer"
    assert by_user(ctx, "v1")["lifecycle_stage"] == "mql"
    back = api.patch(f"/api/v1/contacts/{customer['id']}", json={"lifecycle_stage": "lead"})
    assert back.json()["lifecycle_stage"] == "lead"  # a person may move it back, and it is audited
    entries = api.get("/api/v1/audit", params={"entity_id": customer["id"]}).json()["data"]
    assert entries[0]["data"]["lifecycle_stage_from"] == "customer"
