"""Pipelines and deals: CRUD and validation, won/lost reasons, time in stage on the virtual clock,
progression rules from tracked events through the pipeline, stats, erasure and merges."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.audit.models import audit_log
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.crm.models import crm_deal_stages, crm_deals
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.crm.conftest import user
from tests.support.contacts import by_user
from tests.support.events import send

STAGES = [
    {"name": "new", "probability": 10},
    {"name": "demo", "probability": 50},
    {"name": "closed won", "probability": 100, "kind": "won"},
    {"name": "closed lost", "probability": 0, "kind": "lost"},
]


def _default(api: TestClient) -> dict[str, Any]:
    found = [p for p in api.get("/api/v1/crm/pipelines").json() if p["is_default"]]
    assert len(found) == 1
    return found[0]


def _error(answer: Any) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def _events(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.properties).where(events.c.event == name).order_by(events.c.id)
        )
        return [dict(row[0]) for row in rows]


def test_pipelines_crud_the_default_one_and_stages_in_use(api: TestClient, ctx: AppContext) -> None:
    crm.ensure_default_pipeline(ctx)  # made on start already: a second start adds nothing
    default = _default(api)
    assert len(api.get("/api/v1/crm/pipelines").json()) == 1
    assert default["name"] == "Course sales"
    assert [(s["name"], s["probability"], s["kind"]) for s in default["stages"]] == [
        ("interest", 10, "open"),
        ("consultation booked", 40, "open"),
        ("proposal", 70, "open"),
        ("won", 100, "won"),
        ("lost", 0, "lost"),
    ]
    assert {r["event"] for r in default["rules"]} == {"consultation_scheduled", "Order Completed"}
    url = "/api/v1/crm/pipelines"
    for body, code in (
        ({"name": "X", "stages": [*STAGES[:2], STAGES[2]]}, "invalid_stages"),  # no lost stage
        ({"name": "X", "stages": [*STAGES, {"name": "new", "probability": 1}]}, "duplicate_stage"),
        ({"name": "X", "stages": STAGES, "rules": [{"event": "e", "stage": "nowhere"}]}, "invalid_rule"),
        (
            {"name": "X", "stages": STAGES, "rules": [{"event": "e", "stage": "closed won"}]},
            "reason_required",
        ),
    ):
        assert _error(api.post(url, json=body)) == (422, code), body
    assert api.post(url, json={"name": "X", "stages": [{**STAGES[0], "probability": 101}]}).status_code == 422
    made = api.post(url, json={"name": "Consulting", "stages": STAGES, "is_default": True})
    assert made.status_code == 201, made.text
    pipeline = made.json()
    assert _default(api)["id"] == pipeline["id"]  # only one default
    assert _error(api.post(url, json={"name": "Consulting", "stages": STAGES})) == (
        409,
        "pipeline_name_taken",
    )
    stages = pipeline["stages"]
    deal = api.post(
        "/api/v1/crm/deals",
        json={"title": "Retainer", "value": "1200.50", "currency": "USD", "stage": "demo"},
    )
    assert deal.status_code == 201, deal.text
    assert deal.json()["pipeline_id"] == pipeline["id"]  # the default pipeline
    # swap the two open stages' order, rename one, drop the unused "new": kept by id
    edited = [
        {**stages[1], "name": "demo call"},
        {"name": "proposal", "probability": 70},
        stages[2],
        stages[3],
    ]
    changed = api.put(
        f"{url}/{pipeline['id']}", json={"name": "Consulting", "stages": edited, "is_default": True}
    )
    assert changed.status_code == 200, changed.text
    assert [s["name"] for s in changed.json()["stages"]] == [
        "demo call",
        "proposal",
        "closed won",
        "closed lost",
    ]
    assert api.get(f"/api/v1/crm/deals/{deal.json()['id']}").json()["stage"] == "demo call"
    in_use = api.put(f"{url}/{pipeline['id']}", json={"name": "Consulting", "stages": edited[1:]})
    assert _error(in_use) == (409, "stage_in_use")
    assert _error(api.delete(f"{url}/{pipeline['id']}")) == (409, "pipeline_in_use")
    assert api.delete(f"/api/v1/crm/deals/{deal.json()['id']}").status_code == 204
    assert api.delete(f"{url}/{pipeline['id']}").status_code == 204  # no deal left
    assert _error(api.get(f"{url}/{pipeline['id']}")) == (404, "pipeline_not_found")


def test_deals_crud_reasons_time_in_stage_events_audit_and_timeline(
    api: TestClient, ctx: AppContext, clock: VirtualClock, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    sam = user(api, "Sam Seller", "sam@biz.example")
    url = "/api/v1/crm/deals"
    for body, code in (
        ({"title": "T", "value": "1", "currency": "EUR", "stage": "nowhere"}, "stage_not_found"),
        ({"title": "T", "value": "1", "currency": "EUR", "stage": "won"}, "reason_required"),
        ({"title": "T", "value": "1", "currency": "EUR", "owner_id": "nobody"}, "user_not_found"),
        ({"title": "T", "value": "1", "currency": "EUR", "company_id": "nope"}, "company_not_found"),
        ({"title": "T", "value": "1", "currency": "EUR", "pipeline_id": "nope"}, "pipeline_not_found"),
        ({"title": "T", "value": "1", "currency": "EUR", "email": "nobody@example.com"}, "contact_not_found"),
    ):
        assert _error(api.post(url, json=body)) == (422, code), body
    for bad in ({"currency": "eur"}, {"value": "-1"}, {"value": "1.00001"}, {"extra": 1}):
        assert api.post(url, json={"title": "T", "value": "1", "currency": "EUR", **bad}).status_code == 422
    made = api.post(
        url,
        json={
            "title": "Course bundle",
            "value": "1499.99",
            "currency": "EUR",
            "email": "Ann@Example.com",
            "owner_id": sam["id"],
            "expected_close": "2026-03-01",
        },
    )
    assert made.status_code == 201, made.text
    deal = made.json()
    assert (deal["stage"], deal["status"], deal["value"], deal["reason"]) == (
        "interest",
        "open",
        "1499.9900",
        None,
    )
    deal_url = f"{url}/{deal['id']}"
    clock.advance(timedelta(days=2))
    moved = api.patch(deal_url, json={"stage": "proposal"}).json()
    assert "history" in moved, moved
    assert [(v["days"], v["left_at"] is not None) for v in moved["history"]] == [(2.0, True), (0.0, False)]
    clock.advance(timedelta(hours=12))
    assert _error(api.patch(deal_url, json={"stage": "won"})) == (422, "reason_required")
    assert _error(api.patch(deal_url, json={"reason": "x"})) == (422, "reason_not_allowed")
    won = api.patch(deal_url, json={"stage": "won", "reason": "paid by card", "value": "1500"}).json()
    assert (won["status"], won["reason"], won["value"]) == ("won", "paid by card", "1500.0000")
    assert [v["days"] for v in won["history"]] == [2.0, 0.5, 0.0]
    assert api.patch(deal_url, json={"stage": "proposal"}).json()["reason"] is None  # people may reopen
    assert api.patch(deal_url, json={"title": None}).status_code == 422
    created = _events(ctx, "deal.created")
    assert created == [
        {
            "deal_id": deal["id"],
            "pipeline_id": deal["pipeline_id"],
            "stage": "interest",
            "value": 1499.99,
            "currency": "EUR",
        }
    ]
    changes = [(e["from"], e["to"], e["reason"], e["value"]) for e in _events(ctx, "deal.stage_changed")]
    assert changes == [
        ("interest", "proposal", None, 1499.99),
        ("proposal", "won", "paid by card", 1500.0),
        ("won", "proposal", None, 1500.0),
    ]
    with ctx.db.read() as conn:
        actions = conn.execute(
            sa.select(audit_log.c.action).where(audit_log.c.entity_id == deal["id"]).order_by(audit_log.c.id)
        ).scalars()
        assert list(actions) == [
            "crm.deal_created",
            "crm.deal_stage_changed",
            "crm.deal_updated",
            "crm.deal_stage_changed",
            "crm.deal_stage_changed",
        ]
    kinds = [e["kind"] for e in api.get("/api/v1/crm/leads/ann@example.com/activities").json()["data"]]
    assert kinds.count("deal_stage_changed") == 3
    assert kinds.count("deal_created") == 1
    for n in range(3):
        assert api.post(url, json={"title": f"D{n}", "value": "10", "currency": "GBP"}).status_code == 201
    first = api.get(url, params={"limit": 2}).json()
    second = api.get(url, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    titles = [d["title"] for d in first["data"] + second["data"]]
    assert titles == ["D2", "D1", "D0", "Course bundle"]
    assert second["next_cursor"] is None
    assert [d["title"] for d in api.get(url, params={"email": "ann@example.com"}).json()["data"]] == [
        "Course bundle"
    ]
    assert [
        d["title"] for d in api.get(url, params={"owner_id": sam["id"], "status": "open"}).json()["data"]
    ] == ["Course bundle"]
    assert api.get(url, params={"status": "won"}).json()["data"] == []
    assert _error(api.get(url, params={"cursor": "bogus"}))[0] == 400
    assert _error(api.get(f"{url}/nope")) == (404, "deal_not_found")


def test_progression_rules_from_tracked_events_never_move_a_deal_backwards(
    api: TestClient, ctx: AppContext, processor: EventProcessor, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}, "u2": {"email": "bob@example.com"}})
    send(ctx, {"type": "track", "userId": "u1", "event": "consultation_scheduled"})
    processor.drain()
    opened = api.get("/api/v1/crm/deals", params={"email": "ann@example.com"}).json()["data"]
    assert [(d["stage"], d["title"], d["value"]) for d in opened] == [
        ("consultation booked", "consultation_scheduled", "0.0000")
    ]
    deal_url = f"/api/v1/crm/deals/{opened[0]['id']}"
    api.patch(deal_url, json={"stage": "proposal"})
    send(ctx, {"type": "track", "userId": "u1", "event": "consultation_scheduled"})  # a later booking
    processor.drain()
    assert api.get(deal_url).json()["stage"] == "proposal"  # never backwards
    assert len(api.get("/api/v1/crm/deals", params={"email": "ann@example.com"}).json()["data"]) == 1
    send(
        ctx,
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "properties": {"total": 990, "currency": "usd"},
        },
        {
            "type": "track",
            "userId": "u2",
            "event": "Order Completed",
            "properties": {"total": 49.5, "currency": "usd"},
        },
    )
    processor.drain()
    won = api.get(deal_url).json()
    assert (won["stage"], won["status"], won["reason"], won["value"]) == ("won", "won", "paid", "0.0000")
    bobs = api.get("/api/v1/crm/deals", params={"email": "bob@example.com"}).json()["data"]
    assert [(d["stage"], d["value"], d["currency"], d["reason"]) for d in bobs] == [
        ("won", "49.5000", "USD", "paid")
    ]
    send(ctx, {"type": "track", "userId": "u2", "event": "consultation_scheduled"})
    processor.drain()
    bobs = api.get("/api/v1/crm/deals", params={"email": "bob@example.com"}).json()["data"]
    assert sorted(d["stage"] for d in bobs) == ["consultation booked", "won"]  # won stays won; a new deal
    moved = [(e["from"], e["to"]) for e in _events(ctx, "deal.stage_changed")]
    assert moved == [("consultation booked", "proposal"), ("proposal", "won")]


def test_pipeline_stats_on_a_known_data_set(api: TestClient, clock: VirtualClock) -> None:
    pipeline = api.post("/api/v1/crm/pipelines", json={"name": "Stats", "stages": STAGES}).json()
    start = clock.now()
    url = "/api/v1/crm/deals"
    ids = [
        api.post(
            url, json={"title": f"D{n}", "value": v, "currency": c, "pipeline_id": pipeline["id"]}
        ).json()["id"]
        for n, (v, c) in enumerate((("100", "EUR"), ("300", "EUR"), ("50", "USD"), ("1000", "EUR")))
    ]
    clock.advance(timedelta(days=1))
    for deal_id in ids[:3]:
        api.patch(f"{url}/{deal_id}", json={"stage": "demo"})
    clock.advance(timedelta(days=3))
    api.patch(f"{url}/{ids[0]}", json={"stage": "closed won", "reason": "signed"})
    api.patch(f"{url}/{ids[1]}", json={"stage": "closed lost", "reason": "budget"})
    clock.advance(timedelta(days=2))
    found = api.get("/api/v1/crm/pipeline/stats", params={"pipeline": pipeline["id"]})
    assert found.status_code == 200, found.text
    [stats] = found.json()
    by_name = {s["name"]: s for s in stats["stages"]}
    new, demo, won, lost = (by_name[n] for n in ("new", "demo", "closed won", "closed lost"))
    assert (new["count"], new["values"]) == (
        1,
        [{"currency": "EUR", "total": "1000.0000", "weighted": "100.0000"}],
    )
    assert demo["count"] == 1
    assert demo["values"] == [{"currency": "USD", "total": "50.0000", "weighted": "25.0000"}]
    assert (won["count"], lost["count"]) == (1, 1)
    assert (new["reached"], new["conversion"], new["avg_days"]) == (
        4,
        0.75,
        2.25,
    )  # 1, 1, 1 and 6 days (still there)
    assert (demo["reached"], demo["conversion"]) == (3, round(1 / 3, 6))
    assert demo["avg_days"] == round((3 + 3 + 5) / 3, 6)
    assert (won["conversion"], lost["conversion"]) == (None, None)
    later = api.get(
        "/api/v1/crm/pipeline/stats",
        params={"pipeline": pipeline["id"], "from": (start + timedelta(days=1)).isoformat()},
    ).json()[0]
    assert [s["reached"] for s in later["stages"]] == [0, 3, 1, 1]  # from the next UTC day on
    same_day = api.get(
        "/api/v1/crm/pipeline/stats",
        params={"pipeline": pipeline["id"], "from": (start + timedelta(hours=1)).isoformat()},
    ).json()[0]
    assert [s["reached"] for s in same_day["stages"]] == [4, 3, 1, 1]  # widened to its whole UTC day
    assert [s["count"] for s in later["stages"]] == [0, 0, 0, 0]  # all created before the range
    assert len(api.get("/api/v1/crm/pipeline/stats").json()) == 2
    assert _error(api.get("/api/v1/crm/pipeline/stats", params={"pipeline": "nope"})) == (
        422,
        "pipeline_not_found",
    )
    bad = api.get("/api/v1/crm/pipeline/stats", params={"from": start.isoformat(), "to": start.isoformat()})
    assert _error(bad) == (422, "invalid_range")


def test_erasure_detaches_deals_and_merges_move_them(
    api: TestClient, ctx: AppContext, processor: EventProcessor, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    url = "/api/v1/crm/deals"
    body = {"title": "Ann's course", "value": "10", "currency": "EUR", "email": "ann@example.com"}
    deal_id = api.post(url, json=body).json()["id"]
    api.patch(f"{url}/{deal_id}", json={"stage": "lost", "reason": "Ann said no"})
    ann = by_user(ctx, "u1")["id"]
    assert [d["title"] for d in api.get(f"/api/v1/contacts/{ann}/export").json()["crm_deals"]] == [
        "Ann's course"
    ]
    assert api.delete(f"/api/v1/contacts/{ann}").status_code == 200
    kept = api.get(f"{url}/{deal_id}").json()
    assert (kept["contact_id"], kept["title"], kept["reason"], kept["value"]) == (
        None,
        "(erased)",
        None,
        "10.0000",
    )
    assert len(kept["history"]) == 2  # the revenue numbers and the time in each stage stay
    # a merge: an anonymous visitor with a deal turns out to be u2
    send(
        ctx,
        {"type": "identify", "anonymousId": "a9", "traits": {"email": "bob@example.com"}},
        {"type": "identify", "userId": "u2", "traits": {"plan": "free"}},
    )
    processor.drain()
    api.post(url, json={"title": "Bob's", "value": "5", "currency": "EUR", "email": "bob@example.com"})
    send(ctx, {"type": "identify", "userId": "u2", "anonymousId": "a9"})
    processor.drain()
    survivor = by_user(ctx, "u2")["id"]
    with ctx.db.read() as conn:
        owners = conn.execute(sa.select(crm_deals.c.contact_id).where(crm_deals.c.title == "Bob's")).scalars()
        assert list(owners) == [survivor]
        assert len(conn.execute(sa.select(crm_deal_stages.c.id)).all()) == 3
    found = api.get(url, params={"email": "bob@example.com"}).json()["data"]
    assert [d["title"] for d in found] == ["Bob's"]
