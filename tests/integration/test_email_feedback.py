"""Opens, clicks, unsubscribes, preferences, bounces and complaints: over HTTP, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.contacts.models import contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.ids import new_id
from leadflow.messaging import templates
from leadflow.messaging.build import links
from leadflow.messaging.build.compose import Composer
from leadflow.messaging.build.tokens import Tokens
from leadflow.messaging.delivery import outbox
from leadflow.messaging.feedback import api, bounces, subscription, tracking
from leadflow.messaging.models import email_preferences, messages, suppressions
from tests.peers.sns import LOCAL_CERTS, SnsPeer
from tests.support import events as ingest
from tests.support.http import bearer

EMAIL = "ann@example.com"
HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
LANDING = "https://example.com/pricing?plan=pro&utm_source=email&q=a%20b#compare"


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    app = create_app(ctx, run_worker=False)
    app.include_router(api.router)
    with TestClient(app, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def tokens(ctx: AppContext) -> Tokens:
    return Tokens(ctx.secret_key, ctx.clock)


@pytest.fixture
def sent(ctx: AppContext) -> SimpleNamespace:
    """A contact and one marketing message sent to them."""
    ingest.send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": EMAIL, "first_name": "Ann"}})
    _process(ctx)
    templates.create(
        ctx,
        templates.TemplateCreate(key="news", name="News", subject="News", html="<p>News</p>"),
        actor="test",
    )
    with ctx.db.read() as conn:
        contact_id = conn.execute(sa.select(contacts.c.id).where(contacts.c.email == EMAIL)).scalar_one()
    return SimpleNamespace(contact_id=contact_id, message_id=_message(ctx, contact_id, "m1"))


def _process(ctx: AppContext) -> None:
    processor = EventProcessor(ctx)
    while processor.process_next():
        pass


def _message(ctx: AppContext, contact_id: str, key: str) -> str:
    message_id, now = new_id(), ctx.clock.now()
    with ctx.db.write() as conn:
        row = {
            "id": message_id,
            "key": key,
            "kind": "marketing",
            "contact_id": contact_id,
            "template": "news",
        }
        assert outbox.enqueue_many(conn, ctx, [row], now) == 1
        conn.execute(
            messages.update()
            .where(messages.c.id == message_id)
            .values(status="sent", sent_at=now, recipient=EMAIL)
        )
    return message_id


def _row(ctx: AppContext, message_id: str) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(sa.select(messages).where(messages.c.id == message_id)).one()


def _emitted(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = sa.select(events.c.properties).where(events.c.event == name).order_by(events.c.id)
        return [dict(properties) for properties in conn.execute(query).scalars()]


def _suppression(ctx: AppContext, email: str = EMAIL) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(sa.select(suppressions).where(suppressions.c.email == email)).first()


def _subscription(ctx: AppContext, contact_id: str) -> str:
    with ctx.db.read() as conn:
        query = sa.select(contacts.c.subscription_status).where(contacts.c.id == contact_id)
        return str(conn.execute(query).scalar_one())


def _path(url: str) -> str:
    return urlsplit(url).path


def _unsubscribe_path(ctx: AppContext, message_id: str) -> str:
    return _path(Composer(ctx).unsubscribe_url(SimpleNamespace(id=message_id)))


def _preferences_path(ctx: AppContext, message_id: str) -> str:
    return _path(Composer(ctx).preferences_url(SimpleNamespace(id=message_id)))


# --- opens, clicks, honeypot -------------------------------------------------------------------------


def test_the_open_pixel_counts_people_and_proxies_apart(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace, clock: VirtualClock
) -> None:
    pixel = f"/t/o/{tokens.sign(links.OPEN, [sent.message_id])}"
    clock.advance(timedelta(minutes=1))
    proxied = web.get(pixel, headers={"User-Agent": GMAIL_PROXY})  # before the person: must not hide them
    assert proxied.status_code == 200
    assert proxied.headers["content-type"] == "image/gif"
    assert proxied.headers["cache-control"] == "no-store"
    assert proxied.content == api.PIXEL
    assert len(proxied.content) == 43
    opened_at = clock.advance(timedelta(minutes=1))
    assert web.get(pixel, headers={"User-Agent": HUMAN}).status_code == 200
    clock.advance(timedelta(minutes=1))
    web.get(pixel, headers={"User-Agent": HUMAN})

    row = _row(ctx, sent.message_id)
    assert (row.opens, row.machine_hits, row.clicks) == (2, 1, 0)
    assert row.opened_at == opened_at
    opened = _emitted(ctx, "leadflow.email_opened")
    assert [(e["machine_generated"], e.get("machine_reason")) for e in opened] == [
        (True, "proxy:gmail"),
        (False, None),
    ]
    assert {e["message_id"] for e in opened} == {sent.message_id}


def test_a_bad_pixel_token_still_gets_the_image_and_records_nothing(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace
) -> None:
    wrong_purpose = tokens.sign(links.HONEYPOT, [sent.message_id])
    for token in ("garbage", wrong_purpose, tokens.sign(links.OPEN, ["no-such-message"])):
        response = web.get(f"/t/o/{token}", headers={"User-Agent": HUMAN})
        assert response.status_code == 200
        assert response.content == api.PIXEL
    row = _row(ctx, sent.message_id)
    assert (row.opens, row.machine_hits, row.opened_at) == (0, 0, None)
    assert _emitted(ctx, "leadflow.email_opened") == []


def test_a_click_redirects_to_the_signed_url_and_counts_as_an_open(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace, clock: VirtualClock
) -> None:
    token = tokens.sign(links.CLICK, [sent.message_id, LANDING])
    at = clock.advance(timedelta(minutes=5))  # later than a scanner would click
    response = web.get(f"/t/c/{token}", headers={"User-Agent": HUMAN})
    assert response.status_code == 302
    assert response.headers["location"] == LANDING

    row = _row(ctx, sent.message_id)
    assert (row.clicks, row.opens, row.machine_hits) == (1, 0, 0)
    assert row.clicked_at == at
    assert row.opened_at == at
    [clicked] = _emitted(ctx, "leadflow.email_clicked")
    assert clicked["url"] == LANDING
    assert clicked["machine_generated"] is False
    [opened] = _emitted(ctx, "leadflow.email_opened")
    assert opened["machine_generated"] is False


def test_a_click_on_delivery_is_a_scanner(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace
) -> None:
    token = tokens.sign(links.CLICK, [sent.message_id, LANDING])
    response = web.get(f"/t/c/{token}", headers={"User-Agent": HUMAN})  # 0 s after sending
    assert response.headers["location"] == LANDING
    row = _row(ctx, sent.message_id)
    assert (row.clicks, row.machine_hits, row.clicked_at, row.opened_at) == (0, 1, None, None)
    [clicked] = _emitted(ctx, "leadflow.email_clicked")
    assert clicked["machine_generated"] is True
    assert clicked["machine_reason"] == "too_fast"


def test_a_tampered_click_token_is_refused(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace
) -> None:
    token = tokens.sign(links.CLICK, [sent.message_id, LANDING])
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    for bad in (tampered, tokens.sign(links.OPEN, [sent.message_id])):
        response = web.get(f"/t/c/{bad}")
        assert response.status_code == 400
        assert "location" not in response.headers
        assert response.json()["error"]["code"] == "invalid_link"
    assert _row(ctx, sent.message_id).clicks == 0


def test_the_honeypot_marks_a_machine(
    ctx: AppContext, web: TestClient, tokens: Tokens, sent: SimpleNamespace, clock: VirtualClock
) -> None:
    clock.advance(timedelta(minutes=1))
    response = web.get(
        f"/t/h/{tokens.sign(links.HONEYPOT, [sent.message_id])}", headers={"User-Agent": HUMAN}
    )
    assert response.status_code == 200
    assert response.content == b""
    row = _row(ctx, sent.message_id)
    assert (row.machine_hits, row.clicks, row.clicked_at) == (1, 0, None)
    [clicked] = _emitted(ctx, "leadflow.email_clicked")
    assert clicked["machine_generated"] is True
    assert clicked["machine_reason"] == "honeypot"


# --- unsubscribe ---------------------------------------------------------------------------------------


def _one_click(web: TestClient, path: str, encoding: str) -> Any:
    if encoding == "urlencoded":
        return web.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n"
        b"--b0undary--\r\n"
    )
    return web.post(path, content=body, headers={"Content-Type": "multipart/form-data; boundary=b0undary"})


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_one_click_unsubscribe(
    ctx: AppContext, web: TestClient, sent: SimpleNamespace, clock: VirtualClock, encoding: str
) -> None:
    path = _unsubscribe_path(ctx, sent.message_id)
    at = clock.advance(timedelta(hours=1))
    first = _one_click(web, path, encoding)
    clock.advance(timedelta(minutes=1))
    second = _one_click(web, path, encoding)
    for response in (first, second):
        assert response.status_code == 200  # RFC 8058: no redirect
        assert "location" not in response.headers
        assert "set-cookie" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "You are unsubscribed" in response.text

    suppression = _suppression(ctx)
    assert (suppression.reason, suppression.detail, suppression.message_id) == (
        "unsubscribed",
        "one_click",
        sent.message_id,
    )
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"
    assert _row(ctx, sent.message_id).unsubscribed_at == at
    [event] = _emitted(ctx, "leadflow.email_unsubscribed")
    assert event["message_id"] == sent.message_id
    assert event["source"] == "one_click"
    _process(ctx)  # the profile change and the events go through the pipeline without a failure


def test_the_unsubscribe_page_asks_before_unsubscribing(
    ctx: AppContext, web: TestClient, sent: SimpleNamespace
) -> None:
    path = _unsubscribe_path(ctx, sent.message_id)
    page = web.get(path)
    assert page.status_code == 200
    assert "a***@example.com" in page.text
    assert EMAIL not in page.text
    assert '<form method="post">' in page.text
    assert 'href="../p/' in page.text
    assert _subscription(ctx, sent.contact_id) == "subscribed"  # following a link is not asking

    confirmed = web.post(path)  # the confirmation form: an empty body
    assert confirmed.status_code == 200
    assert _suppression(ctx).detail == "unsubscribe_page"
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"

    assert web.get("/u/not-a-token").status_code == 400
    bad = web.post(_preferences_path(ctx, sent.message_id).replace("/p/", "/u/"))  # wrong purpose
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_link"


# --- preference centre ---------------------------------------------------------------------------------


def _topics(ctx: AppContext) -> None:
    with ctx.db.write() as conn:
        templates.save_topic(conn, ctx, templates.Topic(key="product", name="Product <news>"))
        templates.save_topic(
            conn, ctx, templates.Topic(key="events", name="Events", default_subscribed=False)
        )


def test_the_preference_centre_saves_topic_choices(
    ctx: AppContext, web: TestClient, sent: SimpleNamespace
) -> None:
    _topics(ctx)
    path = _preferences_path(ctx, sent.message_id)
    page = web.get(path)
    assert page.status_code == 200
    assert "Product &lt;news&gt;" in page.text  # escaped
    assert 'value="product" checked>' in page.text
    assert 'value="events">' in page.text
    assert 'name="unsubscribe_all" value="yes">' in page.text  # not ticked: subscribed

    saved = web.post(path, data={"topic": "events"})  # product unticked, events ticked
    assert saved.status_code == 200
    assert "Saved." in saved.text
    assert 'value="product">' in saved.text
    assert 'value="events" checked>' in saved.text
    with ctx.db.read() as conn:
        query = sa.select(email_preferences.c.topic, email_preferences.c.subscribed)
        rows = conn.execute(query.where(email_preferences.c.contact_id == sent.contact_id))
        stored = {row.topic: row.subscribed for row in rows}
    assert stored == {"product": False, "events": True}
    assert _subscription(ctx, sent.contact_id) == "subscribed"
    assert _suppression(ctx) is None


def test_all_marketing_off_and_on_again(ctx: AppContext, web: TestClient, sent: SimpleNamespace) -> None:
    _topics(ctx)
    path = _preferences_path(ctx, sent.message_id)
    off = web.post(path, data={"topic": "product", "unsubscribe_all": "yes"})
    assert 'name="unsubscribe_all" value="yes" checked>' in off.text
    assert _suppression(ctx).reason == "unsubscribed"
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"
    assert len(_emitted(ctx, "leadflow.email_unsubscribed")) == 1

    view = subscription.set_preferences(ctx, sent.message_id, {"product": True}, all_marketing=True)
    assert view.all_marketing is True
    assert view.email == "a***@example.com"
    assert _suppression(ctx) is None
    assert _subscription(ctx, sent.contact_id) == "subscribed"


def test_resubscribing_never_lifts_a_hard_bounce(ctx: AppContext, sent: SimpleNamespace) -> None:
    with ctx.db.write() as conn:
        conn.execute(
            suppressions.insert().values(email=EMAIL, reason="hard_bounce", created_at=ctx.clock.now())
        )
    subscription.set_preferences(ctx, sent.message_id, {}, all_marketing=True)
    assert _suppression(ctx).reason == "hard_bounce"
    subscription.unsubscribe(ctx, sent.message_id, source="test")
    assert _suppression(ctx).reason == "hard_bounce"  # an unsubscribe does not replace it either
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"


# --- bounces and complaints ----------------------------------------------------------------------------


def test_a_sendgrid_bounce_suppresses_the_address(
    ctx: AppContext, web: TestClient, admin_key: str, sent: SimpleNamespace
) -> None:
    payload = [
        {"email": EMAIL, "event": "delivered", "smtp-id": f"<{sent.message_id}@localhost>"},
        {
            "email": EMAIL,
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 The email account does not exist",
            "smtp-id": f"<{sent.message_id}@localhost>",
        },
    ]
    response = web.post("/api/v1/email/feedback/sendgrid", json=payload, headers=bearer(admin_key))
    assert response.status_code == 200
    assert response.json() == {"applied": 1}
    row = _row(ctx, sent.message_id)
    assert row.status == "bounced"
    assert row.bounced_at == ctx.clock.now()
    assert row.error == "550 5.1.1 The email account does not exist"
    assert _suppression(ctx).reason == "hard_bounce"
    [bounced] = _emitted(ctx, "leadflow.email_bounced")
    assert bounced["message_id"] == sent.message_id
    assert _subscription(ctx, sent.contact_id) == "subscribed"  # a bounce is not an unsubscribe

    again = web.post("/api/v1/email/feedback/sendgrid", json=payload, headers=bearer(admin_key))
    assert again.json() == {"applied": 0}
    assert web.post("/api/v1/email/feedback/sendgrid", json=payload).status_code == 401
    invalid = web.post("/api/v1/email/feedback/sendgrid", json=[{"email": 3}], headers=bearer(admin_key))
    assert invalid.status_code == 400
    assert invalid.json()["error"]["code"] == "invalid_feedback"
    unknown = web.post("/api/v1/email/feedback/acme", json=payload, headers=bearer(admin_key))
    assert unknown.status_code == 404


@pytest.mark.settings(**LOCAL_CERTS)
def test_an_ses_complaint_unsubscribes_the_contact(
    ctx: AppContext,
    web: TestClient,
    admin_key: str,
    sent: SimpleNamespace,
    clock: VirtualClock,
    sns_peer: SnsPeer,
) -> None:
    older = sent.message_id
    clock.advance(timedelta(days=1))
    latest = _message(ctx, sent.contact_id, "m2")
    notification = {
        "notificationType": "Complaint",
        "complaint": {"complainedRecipients": [{"emailAddress": EMAIL}], "complaintFeedbackType": "abuse"},
        "mail": {"messageId": "0100018f-ses-own-id"},  # not ours: matched by address to the latest
    }
    envelope = sns_peer.notification(notification)  # signed, as SNS sends it
    response = web.post(
        "/api/v1/email/feedback/ses",
        content=json.dumps(envelope),
        headers={**bearer(admin_key), "Content-Type": "text/plain"},  # as SNS sends it
    )
    assert response.json() == {"applied": 1}
    assert _row(ctx, latest).complained_at == clock.now()
    assert _row(ctx, older).complained_at is None
    assert _suppression(ctx).reason == "complaint"
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"
    [complained] = _emitted(ctx, "leadflow.email_complained")
    assert complained["message_id"] == latest
    assert complained["reason"] == "abuse"


def test_a_complaint_outranks_an_unsubscribe_and_applies_once(ctx: AppContext, sent: SimpleNamespace) -> None:
    subscription.unsubscribe(ctx, sent.message_id, source="one_click")
    report = bounces.Feedback("complaint", EMAIL, True, f"{sent.message_id}@localhost", "abuse report", "arf")
    assert tracking.apply_feedback(ctx, [report, report]) == 1
    assert _suppression(ctx).reason == "complaint"
    assert _row(ctx, sent.message_id).complained_at == ctx.clock.now()
    assert tracking.apply_feedback(ctx, [report]) == 0
    assert len(_emitted(ctx, "leadflow.email_complained")) == 1
    _process(ctx)


DSN = """\
From: MAILER-DAEMON@mx.example.com
To: noreply@localhost
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-boundary"

--dsn-boundary
Content-Type: text/plain

Your message could not be delivered.

--dsn-boundary
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.com

Final-Recipient: rfc822; {email}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {code} {status} <{email}>: mailbox unavailable

--dsn-boundary
Content-Type: text/rfc822-headers

Message-ID: <{message_id}@localhost>
From: noreply@localhost
To: {email}
Subject: News

--dsn-boundary--
"""


def test_an_inbound_dsn_is_applied(
    ctx: AppContext, web: TestClient, admin_key: str, sent: SimpleNamespace
) -> None:
    soft = DSN.format(email=EMAIL, status="4.2.2", code="452", message_id=sent.message_id)
    headers = {**bearer(admin_key), "Content-Type": "message/rfc822"}
    assert web.post("/api/v1/email/inbound", content=soft.encode(), headers=headers).json() == {"applied": 1}
    row = _row(ctx, sent.message_id)
    assert row.status == "sent"
    assert row.error == "452 4.2.2 <ann@example.com>: mailbox unavailable"
    assert _suppression(ctx) is None  # a soft bounce suppresses nothing

    hard = DSN.format(email=EMAIL, status="5.1.1", code="550", message_id=sent.message_id)
    assert web.post("/api/v1/email/inbound", content=hard.encode(), headers=headers).json() == {"applied": 1}
    row = _row(ctx, sent.message_id)
    assert row.status == "bounced"
    assert row.bounced_at is not None
    assert _suppression(ctx).reason == "hard_bounce"
    assert web.post("/api/v1/email/inbound", content=b"hello", headers=headers).json() == {"applied": 0}
    wrong_type = web.post("/api/v1/email/inbound", json={"x": 1}, headers=bearer(admin_key))
    assert wrong_type.status_code == 415
