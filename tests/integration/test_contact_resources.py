"""A contact's subscription, consent and topic preferences; what hangs off a contact (touchpoints,
messages, tags, score, segments, journey runs) and a company (its contacts); the suppression list."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.audit.models import audit_log
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.models import email_preferences, messages, suppressions
from tests.support import journeys as j
from tests.support.events import send
from tests.support.http import bearer


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _contact(api: TestClient, email: str, **fields: object) -> dict[str, object]:
    created = api.post("/api/v1/contacts", json={"email": email, **fields})
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_contact_shows_subscription_consent_and_topic_preferences(api: TestClient, ctx: AppContext) -> None:
    for key, default in (("news", True), ("offers", False)):
        answer = api.post(
            "/api/v1/email/topics", json={"key": key, "name": key.title(), "default_subscribed": default}
        )
        assert answer.status_code == 204, answer.text
    ann = _contact(api, "ann@example.com", consent={"email": {"granted": True}})
    bob = _contact(api, "bob@example.com", subscription_status="unsubscribed")
    with ctx.db.write() as conn:
        conn.execute(
            email_preferences.insert(),
            [
                {
                    "contact_id": ann["id"],
                    "topic": "news",
                    "subscribed": False,
                    "updated_at": ctx.clock.now(),
                },
                {
                    "contact_id": bob["id"],
                    "topic": "offers",
                    "subscribed": True,
                    "updated_at": ctx.clock.now(),
                },
            ],
        )
    got = api.get(f"/api/v1/contacts/{ann['id']}").json()
    assert (got["subscription_status"], got["consent"]) == ("subscribed", {"email": {"granted": True}})
    assert got["preferences"] == {"news": False, "offers": False}
    listed = {c["email"]: c for c in api.get("/api/v1/contacts").json()["data"]}
    assert listed["bob@example.com"]["subscription_status"] == "unsubscribed"
    assert listed["bob@example.com"]["preferences"] == {"news": True, "offers": True}
    assert listed["ann@example.com"]["preferences"] == {"news": False, "offers": False}


def test_touchpoints_newest_first_paginated(
    api: TestClient, ctx: AppContext, processor: EventProcessor, clock: VirtualClock
) -> None:
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "tp@example.com"}})
    for campaign in ("spring", "summer", "autumn"):
        clock.advance(timedelta(hours=1))
        send(
            ctx,
            {
                "type": "page",
                "userId": "u1",
                "properties": {"url": f"https://site.example/?utm_source=mail&utm_campaign={campaign}"},
                "timestamp": clock.now().isoformat(),
            },
        )
    processor.drain()
    contact_id = api.get("/api/v1/contacts", params={"email": "tp@example.com"}).json()["data"][0]["id"]
    first = api.get(f"/api/v1/contacts/{contact_id}/touchpoints", params={"limit": 2}).json()
    assert [t["campaign"] for t in first["data"]] == ["autumn", "summer"]
    assert first["data"][0]["source"] == "mail"
    rest = api.get(
        f"/api/v1/contacts/{contact_id}/touchpoints", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert ([t["campaign"] for t in rest["data"]], rest["next_cursor"]) == (["spring"], None)
    assert api.get("/api/v1/contacts/nobody/touchpoints").status_code == 404


def test_messages_of_a_contact_with_status_and_engagement(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    ann = _contact(api, "ann@example.com")
    other = _contact(api, "other@example.com")
    now = clock.now()
    base = {"kind": "marketing", "template_id": "t1", "due_at": now, "created_at": now, "opens": 0}
    unsent = {"subject": None, "sent_at": None, "opened_at": None}
    with ctx.db.write() as conn:
        conn.execute(
            messages.insert(),
            [
                {**base, "id": "01M1", "key": "k1", "contact_id": ann["id"], "status": "sent",
                 "subject": "Hello", "sent_at": now, "opened_at": now, "opens": 2},
                {**base, "id": "01M2", "key": "k2", "contact_id": ann["id"], "status": "queued", **unsent},
                {**base, "id": "01M3", "key": "k3", "contact_id": other["id"], "status": "sent", **unsent},
            ],
        )  # fmt: skip
    page = api.get(f"/api/v1/contacts/{ann['id']}/messages", params={"limit": 1}).json()
    assert [(m["id"], m["status"]) for m in page["data"]] == [("01M2", "queued")]
    rest = api.get(f"/api/v1/contacts/{ann['id']}/messages", params={"cursor": page["next_cursor"]}).json()
    assert [(m["id"], m["subject"], m["opens"], m["sent_at"] is not None) for m in rest["data"]] == [
        ("01M1", "Hello", 2, True)
    ]
    assert rest["next_cursor"] is None


def test_every_contact_sub_resource_is_reachable(api: TestClient) -> None:
    ann = _contact(api, "ann@example.com")
    for path in ("tags", "score", "segments", "journey-runs", "runs", "touchpoints", "messages", "events"):
        answer = api.get(f"/api/v1/contacts/{ann['id']}/{path}")
        assert answer.status_code == 200, (path, answer.text)


def test_a_company_lists_its_contacts(api: TestClient, ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        *(
            {"type": "identify", "userId": f"u{i}", "traits": {"email": f"p{i}@example.com"}}
            for i in range(3)
        ),
        *(
            {"type": "group", "userId": f"u{i}", "groupId": "acme", "traits": {"name": "Acme"}}
            for i in range(2)
        ),
        {"type": "group", "userId": "u2", "groupId": "globex", "traits": {"name": "Globex"}},
    )
    processor.drain()
    first = api.get("/api/v1/companies/acme/contacts", params={"limit": 1}).json()
    rest = api.get("/api/v1/companies/acme/contacts", params={"cursor": first["next_cursor"]}).json()
    emails = [c["email"] for c in first["data"] + rest["data"]]
    assert sorted(emails) == ["p0@example.com", "p1@example.com"]
    assert rest["next_cursor"] is None
    assert api.get("/api/v1/companies/none/contacts").status_code == 404


def test_suppressions_list_add_remove(api: TestClient, ctx: AppContext) -> None:
    ann = _contact(api, "ann@example.com")
    added = api.post("/api/v1/suppressions", json={"email": " Ann@Example.com ", "detail": "asked by phone"})
    assert added.status_code == 201, added.text
    assert (added.json()["email"], added.json()["reason"]) == ("ann@example.com", "manual")
    again = api.post("/api/v1/suppressions", json={"email": "ann@example.com", "reason": "complaint"})
    assert (again.status_code, again.json()["reason"]) == (200, "manual")  # idempotent: the entry is kept
    assert (
        api.post("/api/v1/suppressions", json={"email": "x@example.com", "reason": "bounced"}).status_code
        == 422
    )
    unsub = api.post("/api/v1/suppressions", json={"email": "x@example.com", "reason": "unsubscribed"})
    assert unsub.status_code == 422
    bad = api.post("/api/v1/suppressions", json={"email": "not-an-email"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_email")
    api.post("/api/v1/suppressions", json={"email": "b@example.com", "reason": "hard_bounce"})
    with ctx.db.write() as conn:
        conn.execute(
            suppressions.insert(),
            {"email": "u@example.com", "reason": "unsubscribed", "created_at": ctx.clock.now()},
        )
    upgraded = api.post("/api/v1/suppressions", json={"email": "u@example.com", "reason": "complaint"})
    assert (upgraded.status_code, upgraded.json()["reason"]) == (201, "complaint")
    page = api.get("/api/v1/suppressions", params={"limit": 2}).json()
    rest = api.get("/api/v1/suppressions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [s["email"] for s in page["data"] + rest["data"]] == [
        "ann@example.com",
        "b@example.com",
        "u@example.com",
    ]
    bounced = api.get("/api/v1/suppressions", params={"reason": "hard_bounce"}).json()["data"]
    assert [s["email"] for s in bounced] == ["b@example.com"]
    one = api.get("/api/v1/suppressions", params={"email": "ANN@example.com"}).json()["data"]
    assert [(s["email"], s["detail"]) for s in one] == [("ann@example.com", "asked by phone")]
    assert api.delete("/api/v1/suppressions/ann@example.com").status_code == 204
    missing = api.delete("/api/v1/suppressions/ann@example.com")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "suppression_not_found")
    with ctx.db.read() as conn:
        trail = conn.execute(
            sa.select(audit_log.c.action, audit_log.c.entity_type, audit_log.c.entity_id)
            .where(audit_log.c.action.like("suppression.%"))
            .order_by(audit_log.c.id)
        ).all()
    assert trail[0] == ("suppression.added", "contact", ann["id"])
    assert trail[-1] == ("suppression.removed", "contact", ann["id"])
    assert ("suppression.added", "suppression", None) in trail


def test_suppression_scopes(client: TestClient, make_key: object) -> None:
    assert callable(make_key)
    reader = bearer(make_key("read"))
    assert client.get("/api/v1/suppressions", headers=reader).status_code == 200
    refused = client.post("/api/v1/suppressions", json={"email": "a@example.com"}, headers=reader)
    assert refused.status_code == 403
    assert client.delete("/api/v1/suppressions/a@example.com", headers=reader).status_code == 403


def test_a_contacts_runs_and_messages_from_a_real_journey(api: TestClient, ctx: AppContext) -> None:
    j.template(ctx, "receipt", kind="transactional", subject="Your receipt")
    j.publish(
        ctx,
        {
            "name": "Receipt then wait",
            "trigger": {"type": "event", "event": "Signed Up"},
            "steps": [
                {"id": "receipt", "type": "send_email", "template": "receipt", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "1d"},
            ],
        },
    )
    j.identify(ctx, "u1", email="ann@example.com")
    j.track(ctx, "u1", "Signed Up")
    j.settle(ctx)
    contact_id = api.get("/api/v1/contacts", params={"email": "ann@example.com"}).json()["data"][0]["id"]
    runs = api.get(f"/api/v1/contacts/{contact_id}/runs").json()
    assert [(r["status"], r["step_id"]) for r in runs["data"]] == [("active", "pause")]
    assert [s["step_id"] for s in runs["data"][0]["steps"]] == ["receipt", "pause"]
    assert api.get(f"/api/v1/contacts/{contact_id}/runs", params={"status": "completed"}).json()["data"] == []
    assert api.get("/api/v1/contacts/nobody/runs").status_code == 404
    sent = api.get(f"/api/v1/contacts/{contact_id}/messages").json()["data"]
    assert [(m["step_id"], m["status"], m["run_id"]) for m in sent] == [
        ("receipt", "queued", runs["data"][0]["id"])  # the deliverer has not run: queued, no subject yet
    ]


@pytest.mark.parametrize("path", ["runs", "journey-runs"])
def test_a_merged_contacts_runs_are_its_survivors_and_an_unknown_id_is_404(
    api: TestClient, ctx: AppContext, processor: EventProcessor, path: str
) -> None:
    """``/journey-runs`` is the older name of ``/runs``: the same route, the same answers. A merged
    contact's id answers as its survivor: the runs of the survivor and of every contact merged into it."""
    j.template(ctx, "hello", kind="transactional", subject="Hello")
    j.publish(
        ctx,
        {
            "name": "Hello then wait",
            "trigger": {"type": "event", "event": "Visit"},
            "steps": [
                {"id": "hello", "type": "send_email", "template": "hello", "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "1d"},
            ],
        },
    )
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "m@example.com"}})
    send(ctx, {"type": "track", "anonymousId": "a1", "event": "Visit"})
    j.settle(ctx)
    (run,) = j.runs(ctx)
    anonymous_id = run["contact_id"]
    send(ctx, {"type": "identify", "userId": "u1", "anonymousId": "a1"})
    processor.drain()
    j.settle(ctx)
    survivor = api.get(f"/api/v1/contacts/{anonymous_id}").json()["id"]
    assert survivor != anonymous_id
    for asked in (anonymous_id, survivor):  # the merged id answers as its survivor does
        answer = api.get(f"/api/v1/contacts/{asked}/{path}")
        assert answer.status_code == 200, answer.text
        # the run keeps the id it started with, and is the survivor's too
        assert [(r["id"], r["contact_id"]) for r in answer.json()["data"]] == [(run["id"], anonymous_id)]
        assert [s["step_id"] for s in answer.json()["data"][0]["steps"]] == ["hello", "pause"]
    unknown = api.get(f"/api/v1/contacts/nobody/{path}")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "contact_not_found"
