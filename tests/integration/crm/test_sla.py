"""SLAs on the virtual clock: a late assignment goes to the fallback owner (a breach), an unanswered lead
alerts its owner (email + webhook event) once, then escalates to the team lead once; an answered lead
does neither; states and per-owner breaches are queryable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm import sla
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.models import messages
from leadflow.webhooks.models import webhook_deliveries
from tests.integration.crm.conftest import user
from tests.support.contacts import by_user

WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _qualify(api: TestClient, ctx: AppContext, processor: EventProcessor, user_id: str) -> str:
    contact_id: str = by_user(ctx, user_id)["id"]
    assert api.patch(f"/api/v1/contacts/{contact_id}", json={"lifecycle_stage": "mql"}).status_code == 200
    processor.drain()
    return contact_id


def _sent(ctx: AppContext) -> list[tuple[str, str | None]]:
    with ctx.db.read() as conn:
        return [
            tuple(r)
            for r in conn.execute(sa.select(messages.c.key, messages.c.to_address).order_by(messages.c.key))
        ]


def _events(ctx: AppContext, name: str) -> list[str]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(events.c.contact_id).where(events.c.event == name)).scalars())


def test_sla_breach_alert_and_escalation_each_once(
    api: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    identify: Callable[..., None],
) -> None:
    # Monday 09:00 UTC: the owner works 09-17 in Berlin (10:00 there), the team lead leads the team
    team = api.post("/api/v1/crm/teams", json={"name": "Sales"}).json()["id"]
    owner = user(
        api, "Olga", "olga@corp.example", team_id=team, timezone="Europe/Berlin", working_hours=WEEKDAYS
    )
    chief = user(api, "Chris", "chris@corp.example", team_id=team)
    fallback = user(api, "Fay", "fay@corp.example", working_hours=WEEKDAYS)
    api.patch(f"/api/v1/crm/teams/{team}", json={"lead_user_id": chief["id"]})
    hook = api.post(
        "/api/v1/webhooks/endpoints",
        json={
            "url": "https://hooks.example.com/in",
            "event_types": ["lead.sla_breached", "lead.sla_escalated"],
        },
    )
    assert hook.status_code == 201, hook.text
    rule = {
        "name": "Webinar",
        "user_id": owner["id"],
        "condition": {"field": "traits.source", "op": "eq", "value": "webinar"},
    }
    assert api.post("/api/v1/crm/routing-rules", json=rule).status_code == 201
    identify({"u1": {"email": "ann@example.com", "source": "webinar"}, "u2": {"email": "bo@example.com"}})
    ann = _qualify(api, ctx, processor, "u1")
    bo = _qualify(api, ctx, processor, "u2")  # no rule places bo and there is no fallback yet
    assert api.get("/api/v1/crm/leads/bo@example.com").json()["owner_id"] is None
    states = {s["contact_id"]: s for s in api.get("/api/v1/crm/sla").json()["data"]}
    assert states[ann]["state"] == "awaiting_response"
    assert states[ann]["first_response_due_at"] == "2026-03-02T11:00:00Z"
    assert states[bo]["state"] == "awaiting_assignment"

    api.patch("/api/v1/crm/routing-config", json={"fallback_owner_id": fallback["id"]})
    clock.advance(timedelta(minutes=4))
    assert sla.check(ctx) == sla.Checked()  # not late yet
    clock.advance(timedelta(minutes=2))
    assert sla.check(ctx) == sla.Checked(fallback_assigned=1, assignment_breaches=1)
    assert api.get("/api/v1/crm/leads/bo@example.com").json()["owner_id"] == fallback["id"]
    assert api.put("/api/v1/crm/leads/bo@example.com/status", json={"status": "contacted"}).status_code == 200

    clock.advance(timedelta(hours=2))  # 11:06: ann was due at 11:00; bo answered
    for _ in range(2):  # a second check (a retry, another worker) alerts nobody again
        sla.check(ctx)
    processor.drain()
    assert _sent(ctx) == [(f"crm-sla-breached:{ann}", "olga@corp.example")]
    assert _events(ctx, "lead.sla_breached") == [ann]
    clock.advance(timedelta(hours=1, minutes=50))
    assert sla.check(ctx).escalated == 0  # escalation is due 2 working hours after the alert (13:06)
    clock.advance(timedelta(minutes=11))
    assert sla.check(ctx).escalated == 1
    assert sla.check(ctx) == sla.Checked()
    processor.drain()
    assert _sent(ctx) == [
        (f"crm-sla-breached:{ann}", "olga@corp.example"),
        (f"crm-sla-escalated:{ann}", "chris@corp.example"),
    ]
    assert _events(ctx, "lead.sla_escalated") == [ann]
    with ctx.db.read() as conn:
        delivered = sorted(conn.execute(sa.select(webhook_deliveries.c.event)).scalars())
    assert delivered == ["lead.sla_breached", "lead.sla_escalated"]

    escalated = api.get("/api/v1/crm/sla", params={"state": "escalated"}).json()["data"]
    assert [(s["contact_id"], s["owner_id"]) for s in escalated] == [(ann, owner["id"])]
    responded = api.get("/api/v1/crm/sla", params={"owner": fallback["id"]}).json()["data"]
    assert [(s["state"], s["assign_breached_at"] is not None) for s in responded] == [("responded", True)]
    summary = api.get(
        "/api/v1/crm/sla/summary", params={"since": "2026-03-02T00:00:00Z", "until": "2026-03-03T00:00:00Z"}
    ).json()
    by_owner: dict[Any, Any] = {s["owner_id"]: s for s in summary}
    assert by_owner[owner["id"]] | {"owner_id": None} == {
        "owner_id": None,
        "qualified": 1,
        "responded": 0,
        "assignment_breaches": 0,
        "response_breaches": 1,
        "escalations": 1,
    }
    assert by_owner[fallback["id"]]["assignment_breaches"] == 1
    bad = api.get(
        "/api/v1/crm/sla/summary", params={"since": "2026-03-03T00:00:00Z", "until": "2026-03-02T00:00:00Z"}
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_range")
    assert api.get("/api/v1/crm/sla", params={"state": "nonsense"}).status_code == 422


def test_a_lead_assigned_by_a_person_gets_its_due_time_in_the_owners_hours(
    api: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    identify: Callable[..., None],
) -> None:
    owner = user(api, "Olga", "olga@corp.example", working_hours=WEEKDAYS)
    identify({"u1": {"email": "ann@example.com"}})
    clock.advance(timedelta(hours=7))  # Monday 16:00 UTC
    _qualify(api, ctx, processor, "u1")
    answer = api.put("/api/v1/crm/leads/ann@example.com/owner", json={"owner_id": owner["id"]})
    assert answer.status_code == 200, answer.text
    assert sla.check(ctx).stamped == 1
    [state] = api.get("/api/v1/crm/sla").json()["data"]
    assert state["first_response_due_at"] == "2026-03-03T10:00:00Z"  # 1 h on Monday, 1 h on Tuesday
    assert state["owner_id"] == owner["id"]


def test_two_workers_checking_at_once_alert_each_lead_once(
    api: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    identify: Callable[..., None],
) -> None:
    owner = user(api, "Olga", "olga@corp.example", working_hours=WEEKDAYS)
    assert (
        api.post("/api/v1/crm/routing-rules", json={"name": "All", "user_id": owner["id"]}).status_code == 201
    )
    identify({f"u{i}": {"email": f"p{i}@example.com"} for i in range(20)})
    qualified = sorted(by_user(ctx, f"u{i}")["id"] for i in range(20))
    for contact_id in qualified:
        assert api.patch(f"/api/v1/contacts/{contact_id}", json={"lifecycle_stage": "mql"}).status_code == 200
    processor.drain()  # one pipeline batch routes them all
    clock.advance(timedelta(hours=3))
    start = threading.Barrier(2)
    done: list[sla.Checked] = []

    def worker() -> None:
        start.wait()
        done.append(sla.check(ctx))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(checked.alerted for checked in done) == 20
    assert [key for key, _ in _sent(ctx)] == [f"crm-sla-breached:{c}" for c in qualified]
    assert sorted(_events(ctx, "lead.sla_breached")) == qualified
