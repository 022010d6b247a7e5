"""Incoming webhooks at ``/hooks/{source}`` on both databases: deliveries signed exactly as Stripe,
Calendly and Standard Webhooks senders sign them, verified on our side (the ``stripe`` library, the
Calendly scheme, the ``standardwebhooks`` library's signer), stored, and processed into contacts and
events; replayed, stale and altered deliveries change nothing; an unprocessable one is kept and replayed.

The VirtualClock is far from the wall clock: every signature is made at the clock's time, and the
receiving side checks timestamps against the same injected clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from leadflow.contacts.models import contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.webhooks import inbound
from leadflow.webhooks.models import inbound_webhooks, webhook_sources
from tests.support.contacts import all_contacts

STRIPE_SECRET = "whsec_test_5f2b8c1d9e7a4b3c2d1e0f9a8b7c6d5e"
CALENDLY_KEY = "calendly-signing-key-0123456789"
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

Post = Callable[..., Any]


@pytest.fixture
def hooks(client: TestClient, admin_key: str) -> TestClient:
    """A client with one source of each kind configured through the API."""
    client.headers["Authorization"] = f"Bearer {admin_key}"
    for name, kind, secret in (
        ("stripe", "stripe", STRIPE_SECRET),
        ("calendly", "calendly", CALENDLY_KEY),
        ("courses", "standard", STANDARD_SECRET),
    ):
        answer = client.post("/api/v1/webhooks/sources", json={"name": name, "kind": kind, "secret": secret})
        assert answer.status_code == 201, answer.text
        assert "secret" not in answer.json()
    return client


def _now(clock: VirtualClock) -> int:
    return int(clock.now().timestamp())


def _body(payload: Any) -> bytes:
    return json.dumps(payload, indent=2).encode()  # as senders do: not our canonical form


def stripe_post(client: TestClient, clock: VirtualClock, payload: dict[str, Any], **kw: Any) -> Any:
    """Signed as Stripe documents: ``t=<unix>,v1=<hex HMAC-SHA256 of "{t}.{body}" with the whsec>``."""
    body = _body(payload)
    stamp = kw.get("at", _now(clock))
    signature = hmac.new(STRIPE_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={stamp},v1={signature}"
    # the header is the one the stripe library itself builds for these bytes
    assert header == stripe.WebhookSignature.generate_signature_header(body.decode(), STRIPE_SECRET, stamp)
    # and accepts (its own tolerance reads the wall clock: one far in the past admits the VirtualClock's)
    stripe.Webhook.construct_event(body, header, STRIPE_SECRET, tolerance=10**10)
    sent = kw.get("send", body)
    return client.post(
        "/hooks/stripe",
        content=sent,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def calendly_post(
    client: TestClient, clock: VirtualClock, payload: dict[str, Any], at: int | None = None
) -> Any:
    body = _body(payload)
    stamp = _now(clock) if at is None else at
    signature = hmac.new(CALENDLY_KEY.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"Calendly-Webhook-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}
    return client.post("/hooks/calendly", content=body, headers=headers)


def standard_post(
    client: TestClient,
    clock: VirtualClock,
    payload: Any,
    msg_id: str,
    secret: str = STANDARD_SECRET,
) -> Any:
    body = _body(payload)
    signature = Webhook(secret).sign(msg_id, clock.now(), body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(_now(clock)),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return client.post("/hooks/courses", content=body, headers=headers)


def counts(ctx: AppContext) -> tuple[int, int, int]:
    with ctx.db.read() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in (events, contacts, inbound_webhooks)
        )


def tracked(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(events).where(events.c.event == name).order_by(events.c.id))
        return [dict(row._mapping) for row in rows]


def checkout(event_id: str, email: str = "ada@example.com", customer: str = "cus_ada") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed",
        "created": 1772442000,
        "data": {
            "object": {
                "id": "cs_test_a1",
                "object": "checkout.session",
                "amount_total": 49900,
                "currency": "eur",
                "customer": customer,
                "customer_details": {"email": email, "name": "Ada Lovelace"},
                "payment_status": "paid",
            }
        },
    }


def invitee(event: str, uri: str, *, rescheduled: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "first_name": "Grace",
        "last_name": "Hopper",
        "uri": uri,
        "event": "https://api.calendly.com/scheduled_events/EV1",
        "scheduled_event": {
            "name": "Consultation",
            "start_time": "2026-03-10T10:00:00.000000Z",
            "end_time": "2026-03-10T10:30:00.000000Z",
        },
        "rescheduled": rescheduled,
    }
    if event == "invitee.canceled":
        payload["cancellation"] = {"canceled_by": "Grace Hopper", "reason": "a clash"}
    return {"event": event, "created_at": "2026-03-02T08:59:30.000000Z", "payload": payload}


def test_stripe_checkout_becomes_an_order_and_a_replay_changes_nothing(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    answer = stripe_post(hooks, clock, checkout("evt_1"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "processed"
    assert answer.json()["duplicate"] is False
    processor.drain()
    [contact] = all_contacts(ctx)
    assert contact["email"] == "ada@example.com"
    assert contact["first_name"] == "Ada"
    [order] = tracked(ctx, "Order Completed")
    assert order["contact_id"] == contact["id"]
    assert order["source"] == "webhook"
    assert order["properties"] | {"amount": 49900, "total": 499.0, "currency": "EUR"} == order["properties"]
    assert order["properties"]["email"] == "ada@example.com"

    before = counts(ctx)
    clock.advance(timedelta(seconds=30))
    again = stripe_post(hooks, clock, checkout("evt_1"))  # Stripe's retry: same event, new signature
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    assert again.json()["id"] == answer.json()["id"]
    processor.drain()
    assert counts(ctx) == before


def test_altered_stale_or_unsigned_deliveries_are_refused_and_change_nothing(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    before = counts(ctx)
    altered = _body(checkout("evt_2", email="mallory@example.com"))
    answer = stripe_post(hooks, clock, checkout("evt_2"), send=altered)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_signature")
    stale = stripe_post(hooks, clock, checkout("evt_2"), at=_now(clock) - 301)
    assert (stale.status_code, stale.json()["error"]["code"]) == (400, "stale_webhook")
    unsigned = hooks.post("/hooks/stripe", content=_body(checkout("evt_2")))
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (400, "invalid_signature")
    # Calendly's window is 180 s by default
    late = calendly_post(
        hooks, clock, invitee("invitee.created", "https://api.calendly.com/i/1"), _now(clock) - 181
    )
    assert (late.status_code, late.json()["error"]["code"]) == (400, "stale_webhook")
    wrong = standard_post(hooks, clock, {"type": "x", "data": {}}, "msg_1", secret="whsec_" + "QUJD" * 8)
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (400, "invalid_signature")
    nul = stripe_post(hooks, clock, {**checkout("evt_3"), "note": "\u0000"})
    assert (nul.status_code, nul.json()["error"]["code"]) == (400, "invalid_text")
    form = hooks.post("/hooks/stripe", content=b"a=1", headers={"Content-Type": "text/plain"})
    assert (form.status_code, form.json()["error"]["code"]) == (400, "unsupported_media_type")
    huge = hooks.post("/hooks/stripe", content=b" " * (ctx.settings.api_max_body_bytes + 1))
    assert (huge.status_code, huge.json()["error"]["code"]) == (413, "payload_too_large")
    listed = standard_post(hooks, clock, [1], "msg_list")
    assert (listed.status_code, listed.json()["error"]["code"]) == (400, "invalid_payload")
    unknown = hooks.post("/hooks/nobody", content=b"{}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "source_not_found")
    assert counts(ctx) == before


def test_calendly_reschedule_arrives_as_cancel_then_create(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    canceled = invitee("invitee.canceled", "https://api.calendly.com/i/old", rescheduled=True)
    assert calendly_post(hooks, clock, canceled).json()["status"] == "processed"
    created = invitee("invitee.created", "https://api.calendly.com/i/new")
    assert calendly_post(hooks, clock, created).json()["status"] == "processed"
    assert calendly_post(hooks, clock, created).json()["duplicate"] is True
    processor.drain()
    [contact] = all_contacts(ctx)
    assert (contact["email"], contact["first_name"], contact["last_name"]) == (
        "grace@example.com",
        "Grace",
        "Hopper",
    )
    [cancel] = tracked(ctx, "consultation_canceled")
    assert cancel["properties"]["rescheduled"] is True
    assert cancel["properties"]["reason"] == "a clash"
    [booked] = tracked(ctx, "consultation_scheduled")
    assert booked["contact_id"] == contact["id"]
    assert booked["properties"]["start_time"] == "2026-03-10T10:00:00.000000Z"
    assert booked["properties"]["event_uri"] == "https://api.calendly.com/scheduled_events/EV1"


def test_standard_webhooks_sender_and_its_replays(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    payload = {
        "type": "course.enrolled",
        "timestamp": "2026-03-02T08:58:00Z",
        "data": {"email": "Linus@Example.com", "course": "python-101"},
    }
    first = standard_post(hooks, clock, payload, "msg_p5jXN8AQM9LWM0D4loKWxJek")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "processed"
    processor.drain()
    before = counts(ctx)
    clock.advance(timedelta(minutes=2))
    again = standard_post(hooks, clock, payload, "msg_p5jXN8AQM9LWM0D4loKWxJek")
    assert again.json()["duplicate"] is True
    processor.drain()
    assert counts(ctx) == before
    bad = standard_post(hooks, clock, {"type": "course.enrolled", "data": {"email": "x@"}}, "msg_bad")
    assert bad.json()["status"] == "failed"
    assert "invalid email" in bad.json()["error"]
    [enrolled] = tracked(ctx, "course.enrolled")
    assert enrolled["properties"]["course"] == "python-101"
    assert [c["email"] for c in all_contacts(ctx)] == ["linus@example.com"]


def test_an_unprocessable_delivery_is_kept_failed_and_replayed_once_it_can_be(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    # Stripe delivers out of order: the subscription (naming only its customer) before the checkout
    subscription = {
        "id": "evt_sub",
        "type": "customer.subscription.created",
        "created": 1772441990,
        "data": {"object": {"id": "sub_1", "object": "subscription", "customer": "cus_ada"}},
    }
    answer = stripe_post(hooks, clock, subscription)
    assert answer.status_code == 200
    assert answer.json()["status"] == "failed"
    assert "cus_ada" in answer.json()["error"]
    failed = hooks.get("/api/v1/webhooks/inbound", params={"status": "failed", "source": "stripe"}).json()
    assert [item["sender_id"] for item in failed["data"]] == ["evt_sub"]
    assert failed["data"][0]["body"]["data"]["object"]["id"] == "sub_1"
    early = hooks.post(f"/api/v1/webhooks/inbound/{answer.json()['id']}/replay")
    assert early.status_code == 200
    assert early.json()["status"] == "failed"

    assert stripe_post(hooks, clock, checkout("evt_checkout")).json()["status"] == "processed"
    replayed = hooks.post(f"/api/v1/webhooks/inbound/{answer.json()['id']}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["status"] == "processed"
    again = hooks.post(f"/api/v1/webhooks/inbound/{answer.json()['id']}/replay")
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_failed")
    processor.drain()
    [contact] = all_contacts(ctx)
    [created] = tracked(ctx, "stripe.customer.subscription.created")
    assert created["contact_id"] == contact["id"]
    assert created["properties"]["object_id"] == "sub_1"
    listed = hooks.get("/api/v1/webhooks/inbound", params={"limit": 1}).json()
    assert len(listed["data"]) == 1
    assert listed["next_cursor"]
    rest = hooks.get("/api/v1/webhooks/inbound", params={"cursor": listed["next_cursor"]}).json()
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None


def test_sources_are_managed_by_api_and_never_show_their_secret(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    listed = hooks.get("/api/v1/webhooks/sources").json()
    assert [(s["name"], s["kind"], s["tolerance"]) for s in listed] == [
        ("calendly", "calendly", 180),
        ("courses", "standard", 300),
        ("stripe", "stripe", 300),
    ]
    bad = hooks.post("/api/v1/webhooks/sources", json={"name": "x", "kind": "stripe", "secret": "nope"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_secret")
    taken = hooks.post(
        "/api/v1/webhooks/sources", json={"name": "stripe", "kind": "stripe", "secret": STRIPE_SECRET}
    )
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "source_exists")
    off = hooks.patch("/api/v1/webhooks/sources/stripe", json={"active": False})
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert "secret" not in off.json()
    refused = stripe_post(hooks, clock, checkout("evt_9"))
    assert (refused.status_code, refused.json()["error"]["code"]) == (404, "source_not_found")
    with ctx.db.read() as conn:  # kept encrypted under the installation key
        stored = conn.execute(sa.select(webhook_sources.c.secret)).scalars().all()
    assert all(value.startswith("fernet:") for value in stored)
    assert not any(secret in value for value in stored for secret in (STRIPE_SECRET, CALENDLY_KEY))
    assert hooks.delete("/api/v1/webhooks/sources/stripe").status_code == 204
    assert hooks.get("/api/v1/webhooks/sources/stripe").status_code == 404


def test_erasure_redacts_the_persons_deliveries(
    hooks: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    answer = stripe_post(hooks, clock, checkout("evt_e"))
    form = {"event": "routing_form_submission.created", "payload": {"submitter": "Ada@Example.com"}}
    assert calendly_post(hooks, clock, form).json()["status"] == "failed"  # kept, naming her address
    processor.drain()
    [contact] = all_contacts(ctx)
    exported, failed = hooks.get(f"/api/v1/contacts/{contact['id']}/export").json()["inbound_webhooks"]
    assert exported["sender_id"] == "evt_e"
    assert exported["body"]["data"]["object"]["customer_details"]["email"] == "ada@example.com"
    assert (failed["status"], failed["body"]["payload"]["submitter"]) == ("failed", "Ada@Example.com")
    assert hooks.delete(f"/api/v1/contacts/{contact['id']}").status_code == 200
    stored = hooks.get(f"/api/v1/webhooks/inbound/{answer.json()['id']}").json()
    assert stored["body"] == {}
    assert stored["sender_id"] == "evt_e"
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(inbound_webhooks).order_by(inbound_webhooks.c.id)).all()
    assert [(r.body, r.email, r.anonymous_id, r.subject) for r in rows] == [({}, None, None, None)] * 2
    # a late copy is still a duplicate: the person is not rebuilt
    assert stripe_post(hooks, clock, checkout("evt_e")).json()["duplicate"] is True


def test_two_copies_at_once_are_stored_once(hooks: TestClient, ctx: AppContext, clock: VirtualClock) -> None:
    """A sender delivering the same event twice concurrently: the unique sender id decides, one copy
    is processed, the other is a duplicate, and the events are written once."""
    body = _body(checkout("evt_twice"))
    stamp = _now(clock)
    signature = hmac.new(STRIPE_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"stripe-signature": f"t={stamp},v1={signature}"}
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: inbound.receive(ctx, "stripe", body, headers), range(2)))
    assert sorted(r.duplicate for r in results) == [False, True]
    assert len({r.id for r in results}) == 1
    assert len(tracked(ctx, "Order Completed")) == 1
