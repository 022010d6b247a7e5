"""GDPR erasure reaches every table, and export holds every category, on both databases.

A person goes through everything leadflow does (events, identify with email, name and phone, a tag,
a static list, a score, a journey with a sent email, a waiting step, a queued webhook, a queued
transactional email, a topic preference, an unsubscribe); after ``DELETE /api/v1/contacts/{id}`` no
text or JSON value of any table holds anything of theirs, their outbox file is gone, their run has
ended and nothing waits to be sent to them, and another person is untouched.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, NotFound
from leadflow.kernel.settings import Settings
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.feedback import bounces, subscription, tracking
from leadflow.privacy import REGISTRY, Treatment
from leadflow.runtime.context import build_context
from leadflow.tables import metadata
from leadflow.webhooks import service as webhooks
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

PII = ("erin.private@example.com", "Erin", "Vasquez-Private", "+14155550199", "erin-1", "erin-device")
BOB = "bob.keeps@example.com"
HOOK = "https://hooks.example.com/leads"
WELCOME = {
    "name": "Welcome",
    "trigger": {"type": "event", "event": "Signed Up"},
    "settings": {"topic": "news"},
    "steps": [
        {"id": "hello", "type": "send_email", "template": "welcome", "next": "hook"},
        {"id": "hook", "type": "webhook", "url": HOOK, "event": "lead.new", "data": {}, "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "2d", "next": "again"},
        {"id": "again", "type": "send_email", "template": "welcome"},
    ],
}
KEYED = ("contact_tags", "segment_members", "contact_scores", "score_points", "email_preferences")
RECEIPT = {
    "name": "Receipt",
    "trigger": {"type": "event", "event": "Order Completed"},
    "steps": [
        {"id": "receipt", "type": "send_email", "template": "receipt", "next": "tell"},
        {"id": "tell", "type": "notify_owner"},  # an internal notice about the person
    ],
}


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"email_outbox_dir": str(tmp_path / "outbox")})


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _ok(answer: Any) -> Any:
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def _world(ctx: AppContext, api: TestClient) -> tuple[str, str]:
    """Erin and Bob through everything; answers their contact ids."""
    j.template(
        ctx,
        "welcome",
        subject="Welcome {{ contact.first_name }} {{ contact.last_name }}",
        html="<p>Hi {{ contact.first_name }} ({{ contact.email }}, {{ contact.phone }})</p>",
    )
    j.template(ctx, "receipt", kind="transactional", subject="Receipt for {{ event.billing_name }}")
    j.template(ctx, "owner-notification", html="<p>{{ contact.email }} bought</p>")
    _ok(api.post("/api/v1/email/topics", json={"key": "news", "name": "News"}))
    rule = {"name": "signed up", "kind": "behavioral", "event": "Signed Up", "points": 10}
    _ok(api.post("/api/v1/scoring/rules", json=rule))
    j.publish(ctx, WELCOME)
    j.publish(ctx, RECEIPT)
    for user, email, first, last, phone in (
        ("erin-1", PII[0], PII[1], PII[2], PII[3]),
        ("bob-1", BOB, "Bob", "Keeps", "+14155550100"),
    ):
        traits = {"email": email, "firstName": first, "lastName": last, "phone": phone}
        send(
            ctx,
            {
                "type": "page",
                "anonymousId": f"{user.split('-')[0]}-device",
                "properties": {"url": "https://x.test/"},
            },
            {
                "type": "identify",
                "userId": user,
                "anonymousId": f"{user.split('-')[0]}-device",
                "traits": traits,
            },
        )
        j.track(ctx, user, "Signed Up", referrer=f"{first} {last}")
    j.settle(ctx)
    deliverer = Deliverer(ctx)
    try:
        assert deliverer.deliver_due() == 2  # both welcome emails, written as .eml files
    finally:
        deliverer.close()
    j.track(ctx, "erin-1", "Order Completed", billing_name=f"{PII[1]} {PII[2]}", phone=PII[3])
    j.settle(ctx)  # the receipt is queued and not sent
    erin, bob = str(by_user(ctx, "erin-1")["id"]), str(by_user(ctx, "bob-1")["id"])
    _ok(api.post(f"/api/v1/contacts/{erin}/tags", json={"add": ["vip"]}))
    segment = _ok(api.post("/api/v1/segments", json={"name": "Friends", "kind": "static"}))
    _ok(api.post(f"/api/v1/segments/{segment['id']}/members", json={"contact_ids": [erin, bob]}))
    (welcome,) = [m for m in j.sent(ctx) if m["contact_id"] == erin and m["status"] == "sent"]
    subscription.set_preferences(ctx, welcome["id"], {"news": False}, True)
    subscription.unsubscribe(ctx, welcome["id"], source="one_click")
    return erin, bob


def _incoming_webhook_about_erin(ctx: AppContext, api: TestClient) -> None:
    """A Standard Webhooks sender tells about Erin (``/hooks/{source}``): its body holds her data."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    _ok(api.post("/api/v1/webhooks/sources", json={"name": "lms", "kind": "standard", "secret": secret}))
    data = {"email": PII[0], "name": f"{PII[1]} {PII[2]}", "phone": PII[3]}
    body = json.dumps({"type": "course.enrolled", "data": data}).encode()
    headers = {
        "webhook-id": "msg_erin",
        "webhook-timestamp": str(int(ctx.clock.now().timestamp())),
        "webhook-signature": Webhook(secret).sign("msg_erin", ctx.clock.now(), body),
        "Content-Type": "application/json",
    }
    assert _ok(api.post("/hooks/lms", content=body, headers=headers))["status"] == "processed"


def _late_news_about(ctx: AppContext, contact_id: str) -> None:
    """After the erasure: their sent email bounces, is opened, clicked and unsubscribed from."""
    (sent,) = [m for m in _rows(ctx, "messages", contact_id) if m["status"] == "sent"]
    report = bounces.Feedback("bounce", PII[0], True, f"{sent['id']}@localhost", f"550 {PII[0]} gone", "dsn")
    tracking.apply_feedback(ctx, [report])
    tracking.record_open(ctx, sent["id"], user_agent="Mozilla/5.0", ip=None)
    tracking.record_click(ctx, sent["id"], f"https://x.test/?who={PII[0]}", user_agent="Mozilla/5.0", ip=None)
    subscription.unsubscribe(ctx, sent["id"], source="one_click")
    with pytest.raises(NotFound):
        subscription.preferences(ctx, sent["id"])


def _text_everywhere(ctx: AppContext) -> str:
    """Every text and JSON value in every table, as one string."""
    chunks: list[str] = []
    with ctx.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                chunks.extend(str(value) for value in row if value is not None)
    return "\n".join(chunks)


def _redacted_as_registered(ctx: AppContext, contact_id: str) -> int:
    """Every column the registry says is redacted holds nothing on the person's remaining rows (only
    empty values or the erasure mark); answers how many such columns were checked on rows."""
    checked = 0
    for name, columns in REGISTRY.items():
        table = metadata.tables[name]
        redacted = [column for column, how in columns.items() if how == Treatment.REDACTED]
        if "contact_id" not in table.c or not redacted:
            continue
        for row in _rows(ctx, name, contact_id):
            for column in redacted:
                assert row[column] in (None, {}, "contact erased"), (name, column, row[column])
                checked += 1
    return checked


def _outbox(ctx: AppContext) -> str:
    return "\n".join(p.read_text() for p in sorted(Path(ctx.settings.email_outbox_dir).glob("*.eml")))


def _rows(ctx: AppContext, table: str, contact_id: str) -> list[dict[str, Any]]:
    found = metadata.tables[table]
    with ctx.db.read() as conn:
        query = sa.select(found).where(found.c.contact_id == contact_id)
        return [dict(row._mapping) for row in conn.execute(query)]


def test_erasure_leaves_nothing_of_the_person_anywhere(ctx: AppContext, api: TestClient) -> None:
    erin, bob = _world(ctx, api)
    _incoming_webhook_about_erin(ctx, api)
    j.settle(ctx)
    before, files = _text_everywhere(ctx), _outbox(ctx)
    for table in (*KEYED, "journey_runs", "journey_steps", "messages", "webhook_deliveries"):
        assert _rows(ctx, table, erin), table  # the world really reached every table
    assert all(value in before for value in PII)
    assert PII[0] in files
    assert BOB in files
    assert {m["status"] for m in _rows(ctx, "messages", erin)} == {"sent", "queued"}
    assert [d["status"] for d in _rows(ctx, "webhook_deliveries", erin)] == ["queued"]

    assert api.delete(f"/api/v1/contacts/{erin}").status_code == 200
    _late_news_about(ctx, erin)

    after = _text_everywhere(ctx)
    for value in PII:
        assert value not in after, value
        assert value not in _outbox(ctx), value
    assert BOB in after  # everyone else is untouched
    assert "Keeps" in after
    assert BOB in _outbox(ctx)
    runs = _rows(ctx, "journey_runs", erin)
    assert {(r["status"], r["exit_reason"]) for r in runs if r["exit_reason"]} == {
        ("exited", "contact erased")
    }
    assert all(r["status"] != "active" for r in runs)
    assert not [s for s in _rows(ctx, "journey_steps", erin) if s["status"] in ("pending", "held")]
    messages = {m["template_id"]: m for m in _rows(ctx, "messages", erin)}
    assert sorted((m["status"], m["error"]) for m in messages.values()) == [
        ("sent", "contact erased"),  # the welcome's statistics stay
        ("suppressed", "contact erased"),  # the queued receipt never goes
        ("suppressed", "contact erased"),  # nor the owner's notice about them
    ]
    assert not _rows(ctx, "events", erin)  # the late news emitted nothing about them
    (kept,) = _ok(api.get("/api/v1/suppressions"))["data"]  # the bounce upgraded the digest
    assert (kept["email"].startswith("hmac:"), kept["reason"], kept["detail"]) == (True, "hard_bounce", None)
    assert [(d["status"], d["payload"]) for d in _rows(ctx, "webhook_deliveries", erin)] == [
        ("cancelled", {})
    ]
    for table in KEYED:
        assert _rows(ctx, table, erin) == [], table
    assert _redacted_as_registered(ctx, erin) >= 30  # messages, runs, steps, deliveries
    bob_runs = _rows(ctx, "journey_runs", bob)
    assert [r["status"] for r in bob_runs] == ["active"]
    assert [d["status"] for d in _rows(ctx, "webhook_deliveries", bob)] == ["queued"]


def test_an_erased_address_stays_suppressed_as_a_digest(ctx: AppContext, api: TestClient) -> None:
    erin, _ = _world(ctx, api)
    api.delete(f"/api/v1/contacts/{erin}")
    j.identify(ctx, "erin-new", email=PII[0].upper())  # the same address signs up again: a new person
    j.track(ctx, "erin-new", "Signed Up")
    j.settle(ctx)
    deliverer = Deliverer(ctx)
    try:
        deliverer.deliver_due()
    finally:
        deliverer.close()
    newcomer = str(by_user(ctx, "erin-new")["id"])
    (welcome,) = _rows(ctx, "messages", newcomer)
    assert (welcome["status"], welcome["error"]) == ("suppressed", "unsubscribed")
    assert PII[0] not in _outbox(ctx)
    assert subscription.preferences(ctx, welcome["id"]).all_marketing is False  # the page tells them
    subscription.set_preferences(ctx, welcome["id"], {}, True)  # they ask to get marketing email again
    assert _ok(api.get("/api/v1/suppressions"))["data"] == []


def test_a_cancelled_webhook_delivery_cannot_be_retried(ctx: AppContext, api: TestClient) -> None:
    erin, _ = _world(ctx, api)
    api.delete(f"/api/v1/contacts/{erin}")
    cancelled = webhooks.listing(ctx, status="cancelled", after=None, limit=10)
    assert [d["contact_id"] for d in cancelled] == [erin]
    with pytest.raises(Conflict):
        webhooks.retry(ctx, cancelled[0]["id"])


def test_a_re_created_person_can_be_erased_again(ctx: AppContext, api: TestClient) -> None:
    body = {"user_id": "erin-1", "email": PII[0], "first_name": PII[1]}
    for _ in range(2):
        contact = _ok(api.post("/api/v1/contacts", json=body))
        erased = api.delete(f"/api/v1/contacts/{contact['id']}")
        assert erased.status_code == 200, erased.text
        assert api.get(f"/api/v1/contacts/{contact['id']}").status_code == 404
    assert PII[0] not in _text_everywhere(ctx)


def test_export_holds_every_category(ctx: AppContext, api: TestClient) -> None:
    erin, _ = _world(ctx, api)
    data = _ok(api.get(f"/api/v1/contacts/{erin}/export"))
    assert data["contact"]["email"] == PII[0]
    assert data["consent"] == data["contact"]["consent"]
    assert data["tags"] == ["vip"]
    assert [s["name"] for s in data["segments"]] == ["Friends"]
    assert [s["total"] for s in data["scores"]] == [10]
    assert [p["rule"] for p in data["score_points"]] == ["signed up"]
    assert sorted(r["journey_id"] for r in data["journey_runs"]) == sorted(
        {r["journey_id"] for r in _rows(ctx, "journey_runs", erin)}
    )
    steps = {s["step_id"] for run in data["journey_runs"] for s in run["steps"]}
    assert {"hello", "hook", "pause", "receipt", "tell"} <= steps
    assert sorted((m["step_id"], m["status"]) for m in data["messages"]) == [
        ("hello", "sent"),
        ("receipt", "queued"),
        ("tell", "queued"),
    ]
    assert [(s["email"], s["reason"]) for s in data["suppressions"]] == [(PII[0], "unsubscribed")]
    assert [(p["topic"], p["subscribed"]) for p in data["email_preferences"]] == [("news", False)]
    (delivery,) = data["webhook_deliveries"]
    assert delivery["payload"]["contact"]["email"] == PII[0]
    assert {e["event"] for e in data["events"]} >= {"Signed Up", "Order Completed"}
    assert {i["value"] for i in data["identities"]} == {"erin-1", "erin-device"}
    assert "contact.tags_changed" in [a["action"] for a in data["audit"]]


def test_an_email_sent_while_its_person_is_erased_leaves_nothing(ctx: AppContext, api: TestClient) -> None:
    j.template(ctx, "hello")
    steps = [{"id": "hello", "type": "send_email", "template": "hello"}]
    j.publish(ctx, {"name": "Hello", "trigger": {"type": "event", "event": "Signed Up"}, "steps": steps})
    j.identify(ctx, "erin-1", email=PII[0], first_name=PII[1])
    j.track(ctx, "erin-1", "Signed Up")
    j.settle(ctx)
    erin = str(by_user(ctx, "erin-1")["id"])
    deliverer = Deliverer(ctx)
    try:
        batch = deliverer.claim(ctx.clock.now(), 10)
        with ctx.db.read() as conn:
            verdicts = deliverer.composer.compose(conn, batch, ctx.clock.now())
        assert api.delete(f"/api/v1/contacts/{erin}").status_code == 200  # while the email is on its way
        results = deliverer.transport.send_many([v.outgoing for v in verdicts if v.outgoing is not None])
        assert PII[0] in _outbox(ctx)
        deliverer.record(verdicts, {v.message.id: r for v, r in zip(verdicts, results, strict=True)}, [])
    finally:
        deliverer.close()
    (message,) = _rows(ctx, "messages", erin)
    assert (message["status"], message["recipient"], message["subject"]) == ("suppressed", None, None)
    assert PII[0] not in _outbox(ctx)
    assert PII[1] not in _text_everywhere(ctx)


def test_an_address_suppressed_before_its_person_existed_is_erased_too(
    ctx: AppContext, api: TestClient
) -> None:
    _ok(api.post("/api/v1/suppressions", json={"email": PII[0], "detail": f"asked by {PII[1]} {PII[2]}"}))
    contact = _ok(api.post("/api/v1/contacts", json={"user_id": "erin-1", "email": PII[0]}))
    assert PII[0] in _text_everywhere(ctx)
    assert api.delete(f"/api/v1/contacts/{contact['id']}").status_code == 200
    after = _text_everywhere(ctx)
    for value in (PII[0], PII[2]):
        assert value not in after, value
    (kept,) = _ok(api.get("/api/v1/suppressions"))["data"]
    assert (kept["email"].startswith("hmac:"), kept["reason"], kept["detail"]) == (True, "manual", None)


def test_a_second_erasure_of_an_address_keeps_the_stronger_suppression(
    ctx: AppContext, api: TestClient
) -> None:
    erin, _ = _world(ctx, api)  # Erin unsubscribed
    api.delete(f"/api/v1/contacts/{erin}")
    newcomer = _ok(api.post("/api/v1/contacts", json={"email": PII[0]}))
    tracking.apply_feedback(ctx, [bounces.Feedback("bounce", PII[0], True, None, "550 no such user", "dsn")])
    assert api.delete(f"/api/v1/contacts/{newcomer['id']}").status_code == 200
    (kept,) = _ok(api.get("/api/v1/suppressions"))["data"]
    assert (kept["email"].startswith("hmac:"), kept["reason"]) == (True, "hard_bounce")


def test_reports_and_preferences_read_a_generated_secret_outside_their_transaction(
    ctx: AppContext, settings: Settings, clock: VirtualClock
) -> None:
    """The installation secret (which keys erased addresses) is generated by its first read, in a write
    transaction of its own: read inside another, SQLite's single writer would wait for itself."""
    fresh = build_context(settings.model_copy(update={"secret_key": None}), clock=clock)
    try:
        report = bounces.Feedback("bounce", PII[0], True, None, "550 no such user", "dsn")
        assert tracking.apply_feedback(fresh, [report]) == 1
    finally:
        fresh.close()
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(metadata.tables["suppressions"].c.reason)).scalars().all() == [
            "hard_bounce"
        ]
