"""The unsubscribe link visited again: "you are unsubscribed" with a resubscribe button that works and is
recorded as unsubscribing is; RFC 8058 one-click stays as it was. Over HTTP, on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.audit.models import audit_log
from leadflow.contacts.models import contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.ids import new_id
from leadflow.messaging import templates
from leadflow.messaging.build.compose import Composer
from leadflow.messaging.delivery import outbox
from leadflow.messaging.feedback import api, subscription
from leadflow.messaging.models import email_preferences, messages, suppressions
from tests.support import events as ingest

EMAIL = "ann@example.com"
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    app = create_app(ctx, run_worker=False)
    app.include_router(api.router)
    with TestClient(app, follow_redirects=False) as client:
        yield client


def _process(ctx: AppContext) -> None:
    processor = EventProcessor(ctx)
    while processor.process_next():
        pass


def _sent(ctx: AppContext, topic: str | None = None) -> SimpleNamespace:
    """A contact and one marketing message (of ``topic``) sent to them; ``path``: its unsubscribe link."""
    ingest.send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": EMAIL}})
    _process(ctx)
    with ctx.db.write() as conn:
        templates.save_topic(conn, ctx, templates.Topic(key="product", name="Product news"))
    data = templates.TemplateCreate(key="news", name="News", subject="News", html="<p>News</p>", topic=topic)
    templates.create(ctx, data, actor="test")
    with ctx.db.read() as conn:
        contact_id = conn.execute(sa.select(contacts.c.id).where(contacts.c.email == EMAIL)).scalar_one()
    message_id, now = new_id(), ctx.clock.now()
    row = {"id": message_id, "key": "m1", "kind": "marketing", "contact_id": contact_id, "template": "news"}
    with ctx.db.write() as conn:
        assert outbox.enqueue_many(conn, ctx, [{**row, "topic": topic}], now) == 1
        conn.execute(
            messages.update()
            .where(messages.c.id == message_id)
            .values(status="sent", sent_at=now, recipient=EMAIL, topic=topic)
        )
    path = urlsplit(Composer(ctx).unsubscribe_url(SimpleNamespace(id=message_id))).path
    return SimpleNamespace(contact_id=contact_id, message_id=message_id, path=path)


def _subscription(ctx: AppContext, contact_id: str) -> str:
    with ctx.db.read() as conn:
        query = sa.select(contacts.c.subscription_status).where(contacts.c.id == contact_id)
        return str(conn.execute(query).scalar_one())


def _suppression(ctx: AppContext) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(sa.select(suppressions).where(suppressions.c.email == EMAIL)).first()


def _emitted(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = sa.select(events.c.properties).where(events.c.event == name).order_by(events.c.id)
        return [dict(properties) for properties in conn.execute(query).scalars()]


def _audited(ctx: AppContext, contact_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        query = sa.select(audit_log.c.actor, audit_log.c.data).where(
            audit_log.c.entity_id == contact_id, audit_log.c.action == "contact.updated"
        )
        return [
            (row.actor, row.data["subscription_status"])
            for row in conn.execute(query.order_by(audit_log.c.id))
        ]


def _resubscribe_action(page: str) -> str:
    (action,) = re.findall(r'<form method="post" action="([^"]+)">', page)
    return str(action)


def test_the_link_visited_again_says_unsubscribed_and_resubscribing_works(
    ctx: AppContext, web: TestClient
) -> None:
    sent = _sent(ctx)
    assert web.post(sent.path).status_code == 200  # the confirmation form
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"

    again = web.get(sent.path)
    assert again.status_code == 200
    assert "You are unsubscribed" in again.text
    assert "a***@example.com" in again.text
    assert '<form method="post">' not in again.text  # no second "unsubscribe?" question
    action = _resubscribe_action(again.text)
    target = urlsplit(urljoin(f"http://testserver{sent.path}", action)).path
    assert target == f"{sent.path}/resubscribe"  # relative: works wherever the app is mounted

    back = web.post(target)
    assert back.status_code == 200
    assert "location" not in back.headers
    assert "set-cookie" not in back.headers
    assert "You are subscribed again" in back.text
    assert _subscription(ctx, sent.contact_id) == "subscribed"
    assert _suppression(ctx) is None
    [event] = _emitted(ctx, "leadflow.email_resubscribed")
    assert (event["message_id"], event["source"]) == (sent.message_id, "resubscribe_page")
    assert _audited(ctx, sent.contact_id) == [
        ("email:unsubscribe_page", "unsubscribed"),
        ("email:resubscribe_page", "subscribed"),
    ]
    (preferences,) = re.findall(r'href="([^"]+)"', back.text)
    assert web.get(urljoin(f"http://testserver{target}", preferences)).status_code == 200

    assert "Stop marketing email" in web.get(sent.path).text  # the question again, as at first
    assert web.post(target).status_code == 200  # asking twice changes nothing
    assert len(_emitted(ctx, "leadflow.email_resubscribed")) == 1
    assert len(_audited(ctx, sent.contact_id)) == 2
    _process(ctx)  # the profile changes and the events go through the pipeline without a failure


def test_one_click_still_unsubscribes_after_a_resubscribe(
    ctx: AppContext, web: TestClient, clock: VirtualClock
) -> None:
    sent = _sent(ctx)
    subscription.unsubscribe(ctx, sent.message_id, source="one_click")
    assert web.post(f"{sent.path}/resubscribe").status_code == 200
    assert _subscription(ctx, sent.contact_id) == "subscribed"

    answer = web.post(sent.path, content=ONE_CLICK, headers=FORM)
    assert answer.status_code == 200  # RFC 8058: no redirect
    assert "location" not in answer.headers
    assert "set-cookie" not in answer.headers
    assert "You are unsubscribed" in answer.text
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"
    assert _suppression(ctx).reason == "unsubscribed"
    sources = [event["source"] for event in _emitted(ctx, "leadflow.email_unsubscribed")]
    assert sources == ["one_click", "one_click"]  # each unsubscribe of the cycle is an event

    clock.advance(timedelta(days=1))
    assert web.post(f"{sent.path}/resubscribe").status_code == 200
    assert len(_emitted(ctx, "leadflow.email_resubscribed")) == 2
    _process(ctx)


def test_a_topic_left_in_the_preference_centre_can_be_taken_back(ctx: AppContext, web: TestClient) -> None:
    sent = _sent(ctx, topic="product")
    subscription.set_preferences(ctx, sent.message_id, {"product": False}, all_marketing=True)

    page = web.get(sent.path)
    assert "You are unsubscribed" in page.text
    assert "no more Product news email" in page.text
    assert web.post(f"{sent.path}/resubscribe").status_code == 200
    with ctx.db.read() as conn:
        query = sa.select(email_preferences.c.subscribed).where(email_preferences.c.topic == "product")
        assert conn.execute(query).scalar_one() is True
    assert "Stop marketing email" in web.get(sent.path).text
    assert len(_emitted(ctx, "leadflow.email_resubscribed")) == 1


def test_resubscribing_never_lifts_a_hard_bounce(ctx: AppContext, web: TestClient) -> None:
    sent = _sent(ctx)
    with ctx.db.write() as conn:
        conn.execute(
            suppressions.insert().values(email=EMAIL, reason="hard_bounce", created_at=ctx.clock.now())
        )
    web.post(sent.path)
    assert web.post(f"{sent.path}/resubscribe").status_code == 200
    assert _suppression(ctx).reason == "hard_bounce"


def test_resubscribing_needs_an_unsubscribe_token(ctx: AppContext, web: TestClient) -> None:
    sent = _sent(ctx)
    web.post(sent.path)
    preferences = urlsplit(Composer(ctx).preferences_url(SimpleNamespace(id=sent.message_id))).path
    for path in ("/u/not-a-token/resubscribe", preferences.replace("/p/", "/u/") + "/resubscribe"):
        refused = web.post(path)
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "invalid_link"
    assert web.get(f"{sent.path}/resubscribe").status_code == 405  # a link followed never resubscribes
    assert _subscription(ctx, sent.contact_id) == "unsubscribed"
