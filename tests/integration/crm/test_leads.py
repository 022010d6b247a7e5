"""Leads: made from the pipeline, read, filtered, status changes (rules, audit, event), owners, erasure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.audit import service as audit
from leadflow.contacts.processor import EventProcessor
from leadflow.crm.models import crm_activities, crm_leads
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.crm.conftest import user
from tests.support.contacts import by_user
from tests.support.events import send


def _event_properties(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.properties).where(events.c.event == name).order_by(events.c.id)
        )
        return [dict(row[0]) for row in rows]


def test_a_contact_at_stage_lead_becomes_a_new_lead_and_a_visitor_does_not(
    api: TestClient, ctx: AppContext, processor: EventProcessor, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "Ann@Example.com", "first_name": "Ann", "source": "webinar"}})
    send(ctx, {"type": "page", "anonymousId": "a-1", "name": "Pricing"})
    processor.drain()
    lead = api.get("/api/v1/crm/leads/ann@example.com").json()
    assert lead["status"] == "new"
    assert lead["lifecycle_stage"] == "lead"
    assert (lead["first_name"], lead["source"], lead["owner_id"]) == ("Ann", "webinar", None)
    assert (lead["score"], lead["score_band"], lead["open_tasks"]) == (0, "cold", 0)
    assert lead["first_response_at"] is None
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(crm_leads)).scalar_one() == 1
    identify({"u1": {"first_name": "Anne"}})  # touched again: still one lead, the same one
    assert api.get("/api/v1/crm/leads/ANN@example.com").json()["first_name"] == "Anne"
    missing = api.get("/api/v1/crm/leads/nobody@example.com")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "contact_not_found")
    assert api.get("/api/v1/crm/leads/not-an-email").status_code == 422


def test_status_changes_follow_the_reason_rules_are_audited_and_are_pipeline_events(
    api: TestClient,
    ctx: AppContext,
    clock: VirtualClock,
    processor: EventProcessor,
    identify: Callable[..., None],
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    url = "/api/v1/crm/leads/ann@example.com/status"
    for body, code in (
        ({"status": "lost"}, "reason_required"),
        ({"status": "unqualified", "reason": " "}, "reason_required"),
        ({"status": "qualified", "reason": "why not"}, "reason_not_allowed"),
    ):
        refused = api.put(url, json=body)
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, code), body
    assert api.put(url, json={"status": "won"}).status_code == 422
    assert api.put(url, json={"status": "qualified", "extra": 1}).status_code == 422
    clock.advance(timedelta(minutes=30))
    qualified = api.put(url, json={"status": "qualified"}).json()
    assert qualified["status"] == "qualified"
    assert qualified["first_response_at"] == qualified["status_changed_at"]
    first_response = qualified["first_response_at"]
    clock.advance(timedelta(hours=1))
    lost = api.put(url, json={"status": "lost", "reason": "chose a competitor"}).json()
    assert (lost["status"], lost["reason"]) == ("lost", "chose a competitor")
    assert lost["first_response_at"] == first_response  # only the first status leaving new
    assert (
        api.put(url, json={"status": "lost", "reason": "chose a competitor"}).status_code == 200
    )  # no change
    assert _event_properties(ctx, "lead.status_changed") == [
        {"from": "new", "to": "qualified", "reason": None},
        {"from": "qualified", "to": "lost", "reason": "chose a competitor"},
    ]
    contact_id = by_user(ctx, "u1")["id"]
    with ctx.db.read() as conn:
        entries = audit.entries(conn, entity_type="contact", entity_ids=[contact_id])
    assert [e["action"] for e in entries if e["action"].startswith("lead.")] == ["lead.status_changed"] * 2
    processor.drain()  # the events flow through the pipeline: a segment rule sees them
    rule = {"event": "lead.status_changed", "where": [{"field": "to", "op": "eq", "value": "lost"}]}
    preview = api.post("/api/v1/segments/preview", json={"rules": rule})
    assert preview.status_code == 200, preview.text
    assert [c["id"] for c in preview.json()["contacts"]] == [contact_id]


def test_a_status_set_on_a_contact_that_is_not_a_lead_yet_makes_it_one(
    api: TestClient, ctx: AppContext
) -> None:
    created = api.post("/api/v1/contacts", json={"email": "bo@example.com", "lifecycle_stage": "visitor"})
    assert created.status_code == 201, created.text
    # a contact with an email is at least a lead (contacts' rule), so it already is one
    assert api.get("/api/v1/crm/leads/bo@example.com").json()["status"] == "new"
    with ctx.db.write() as conn:
        conn.execute(crm_leads.delete())
    assert api.get("/api/v1/crm/leads/bo@example.com").json()["error"]["code"] == "lead_not_found"
    changed = api.put("/api/v1/crm/leads/bo@example.com/status", json={"status": "contacted"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"] == "contacted"


def test_assigning_an_owner_is_audited_and_an_event_and_needs_an_active_user(
    api: TestClient, ctx: AppContext, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    sam = user(api, "Sam Seller", "sam@biz.example")
    off = user(api, "Olga Off", "olga@biz.example", active=False)
    url = "/api/v1/crm/leads/ann@example.com/owner"
    assert api.put(url, json={"owner_id": "nope"}).json()["error"]["code"] == "user_not_found"
    assert api.put(url, json={"owner_id": off["id"]}).json()["error"]["code"] == "user_inactive"
    assert api.put(url, json={"owner_id": sam["id"]}).json()["owner_id"] == sam["id"]
    assert api.put(url, json={"owner_id": None}).json()["owner_id"] is None
    assert _event_properties(ctx, "lead.owner_assigned") == [
        {"from": None, "to": sam["id"]},
        {"from": sam["id"], "to": None},
    ]
    api.put(url, json={"owner_id": sam["id"]})
    in_use = api.delete(f"/api/v1/crm/users/{sam['id']}")
    assert (in_use.status_code, in_use.json()["error"]["code"]) == (409, "user_in_use")


def test_leads_filter_search_and_page_newest_first(
    api: TestClient, ctx: AppContext, clock: VirtualClock, identify: Callable[..., None]
) -> None:
    sam = user(api, "Sam", "sam@biz.example")
    for index, name in enumerate(("Ann", "Bob", "Cid", "Dee")):
        clock.advance(timedelta(minutes=1))
        identify({f"u{index}": {"email": f"{name.lower()}@example.com", "first_name": name, "source": "ads"}})
    clock.advance(timedelta(minutes=1))
    api.put("/api/v1/crm/leads/bob@example.com/status", json={"status": "qualified"})
    api.put("/api/v1/crm/leads/cid@example.com/status", json={"status": "lost", "reason": "no budget"})
    api.put("/api/v1/crm/leads/cid@example.com/owner", json={"owner_id": sam["id"]})
    api.patch(f"/api/v1/contacts/{by_user(ctx, 'u3')['id']}", json={"lifecycle_stage": "sql"})

    def emails(**params: Any) -> list[str]:
        answer = api.get("/api/v1/crm/leads", params=params)
        assert answer.status_code == 200, answer.text
        return [lead["email"] for lead in answer.json()["data"]]

    assert emails() == ["dee@example.com", "cid@example.com", "bob@example.com", "ann@example.com"]
    assert emails(status=["qualified", "lost"]) == ["cid@example.com", "bob@example.com"]
    assert emails(owner_id=sam["id"]) == ["cid@example.com"]
    assert emails(unassigned=True) == ["dee@example.com", "bob@example.com", "ann@example.com"]
    assert emails(stage="sql") == ["dee@example.com"]
    assert emails(q="BO") == ["bob@example.com"]
    assert emails(source="ads", score_min=0, score_max=0) == emails()
    assert emails(score_min=1) == []
    start = clock.now() - timedelta(minutes=2, seconds=30)
    assert emails(created_after=start.isoformat()) == ["dee@example.com", "cid@example.com"]
    assert emails(updated_after=(clock.now() - timedelta(seconds=1)).isoformat()) == [
        "cid@example.com",
        "bob@example.com",
    ]
    seen, cursor = [], None
    while True:
        page = api.get(
            "/api/v1/crm/leads", params={"limit": 3, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [lead["email"] for lead in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == emails()
    for params, code in (
        ({"status": "won"}, "invalid"),
        ({"stage": "prospect"}, "invalid_stage"),
        ({"cursor": "garbage"}, "invalid_cursor"),
    ):
        bad = api.get("/api/v1/crm/leads", params=params)
        assert 400 <= bad.status_code < 500, params
        if code != "invalid":
            assert bad.json()["error"]["code"] == code


def test_erasure_removes_the_lead_and_its_activities_and_export_shows_them(
    api: TestClient, ctx: AppContext, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}, "u2": {"email": "bob@example.com"}})
    for email in ("ann@example.com", "bob@example.com"):
        logged = api.post(
            "/api/v1/crm/activities", json={"email": email, "kind": "note", "body": "likes Python"}
        )
        assert logged.status_code == 201, logged.text
    ann = by_user(ctx, "u1")["id"]
    exported = api.get(f"/api/v1/contacts/{ann}/export").json()
    assert exported["crm_lead"][0]["status"] == "new"
    assert [a["body"] for a in exported["crm_activities"]] == ["likes Python"]
    assert api.delete(f"/api/v1/contacts/{ann}").status_code == 200
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(crm_leads.c.contact_id)).scalars().all() == [by_user(ctx, "u2")["id"]]
        assert conn.execute(sa.select(sa.func.count()).select_from(crm_activities)).scalar_one() == 1


def test_a_merged_contacts_lead_and_activities_move_to_the_survivor(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    send(
        ctx,
        {"type": "identify", "anonymousId": "a9", "traits": {"email": "bob@example.com"}},
        {"type": "identify", "userId": "u1", "traits": {"plan": "free"}},
    )
    processor.drain()
    assert (
        api.put("/api/v1/crm/leads/bob@example.com/status", json={"status": "contacted"}).status_code == 200
    )
    api.post(
        "/api/v1/crm/activities", json={"email": "bob@example.com", "kind": "note", "body": "met at a fair"}
    )
    send(
        ctx, {"type": "identify", "userId": "u1", "anonymousId": "a9"}
    )  # the anonymous profile merges into u1
    processor.drain()
    survivor = by_user(ctx, "u1")["id"]
    lead = api.get("/api/v1/crm/leads/bob@example.com").json()
    assert (lead["contact_id"], lead["status"]) == (survivor, "contacted")
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(crm_leads.c.contact_id)).scalars().all() == [survivor]
        assert conn.execute(sa.select(crm_activities.c.contact_id)).scalars().all() == [survivor]
