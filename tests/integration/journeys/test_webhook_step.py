"""The journey ``webhook`` step: Liquid in ``data``, the triggering event, delivered to a real receiver."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook

from leadflow.events.models import events
from leadflow.journeys import executor
from leadflow.journeys.executor import BACKOFF
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.webhooks import service as webhooks
from leadflow.webhooks.deliverer import WebhookDeliverer
from tests.peers.http_receiver import HttpReceiver, Received
from tests.support import journeys as j
from tests.support.contacts import by_user

DATA = {
    "seats": "{{ event.seats }}",
    "who": {"name": "{{ contact.first_name }} {{ contact.last_name | default: '' }}", "score": 7},
    "labels": ["{{ vars.plan | upcase }}", True, None, "plain {text}"],
    "firm": "{{ company.name | default: 'none' }}",
    "from": "{{ brand.name }}",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receiver listens on 127.0.0.1, which the network guard admits only when told to."""
    return settings.model_copy(update={"network_allow": "127.0.0.1", "brand_name": "Course School"})


@pytest.fixture
def receiver(ctx: AppContext) -> Iterator[HttpReceiver]:
    secret = webhooks.signing_secret(ctx)
    with HttpReceiver(check=lambda r: _verify(secret, r)) as peer:
        yield peer


def _verify(secret: str, request: Received) -> None:
    """The signature matches the id, timestamp and body (the clock is virtual: no tolerance check)."""
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], at, request.body.decode())
    assert request.headers["webhook-signature"] == expected


def _publish(ctx: AppContext, url: str, data: dict[str, Any]) -> str:
    step = {"id": "hook", "type": "webhook", "url": url, "event": "lead.hot", "data": data, "next": "tag"}
    definition = {
        "name": "Hooks",
        "trigger": {"type": "event", "event": "Signed Up"},
        "variables": {"plan": "pro"},
        "steps": [step, {"id": "tag", "type": "add_tag", "tags": ["hooked"]}],
    }
    return j.publish(ctx, definition, key="hooks")


def _deliver(ctx: AppContext) -> None:
    with WebhookDeliverer(ctx) as deliverer:
        while deliverer.deliver_due():
            pass


def test_data_is_rendered_per_contact_and_the_trigger_event_is_sent(
    ctx: AppContext, receiver: HttpReceiver
) -> None:
    journey_id = _publish(ctx, receiver.url + "/hooks", DATA)
    j.identify(ctx, "ann", email="ann@example.com", first_name="Ann", last_name="Lee")
    j.identify(ctx, "bo", email="bo@example.com", first_name="Bo")
    j.settle(ctx)
    j.track(ctx, "ann", "Signed Up", seats=3)
    j.track(ctx, "bo", "Signed Up", seats=12)
    j.settle(ctx)
    _deliver(ctx)
    assert [r.check_error for r in receiver.requests] == [None, None]
    bodies = {r.json()["data"]["contact"]["email"]: r.json() for r in receiver.requests}
    ann = bodies["ann@example.com"]
    assert ann["type"] == "lead.hot"
    assert ann["data"]["data"] == {
        "seats": "3",
        "who": {"name": "Ann Lee", "score": 7},
        "labels": ["PRO", True, None, "plain {text}"],
        "firm": "none",
        "from": "Course School",
    }
    assert bodies["bo@example.com"]["data"]["data"]["seats"] == "12"
    assert bodies["bo@example.com"]["data"]["data"]["who"]["name"] == "Bo "
    with ctx.db.read() as conn:
        stored = conn.execute(
            events.select().where(
                events.c.contact_id == by_user(ctx, "ann")["id"], events.c.event == "Signed Up"
            )
        ).one()
    trigger = ann["data"]["event"]
    assert (trigger["name"], trigger["properties"], trigger["message_id"]) == (
        "Signed Up",
        {"seats": 3},
        stored.message_id,
    )
    assert trigger["timestamp"].startswith(stored.timestamp.date().isoformat())
    assert (ann["data"]["journey"]["id"], ann["data"]["step"]) == (journey_id, "hook")
    assert {r["status"] for r in j.runs(ctx)} == {"completed"}


def test_a_value_that_cannot_be_rendered_fails_only_that_contacts_step(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver
) -> None:
    _publish(ctx, receiver.url, {"name": "{{ contact.first_name }}"})
    j.identify(ctx, "ann", email="ann@example.com", first_name="Ann")
    j.identify(ctx, "nameless", email="nameless@example.com")
    j.settle(ctx)
    j.track(ctx, "ann", "Signed Up")
    j.track(ctx, "nameless", "Signed Up")
    j.settle(ctx)
    nameless = str(by_user(ctx, "nameless")["id"])
    (waiting,) = [s for s in j.steps(ctx) if s["contact_id"] == nameless and s["step_id"] == "hook"]
    assert (waiting["status"], waiting["attempts"]) == ("pending", 1)
    assert "contact.first_name" in waiting["error"]
    assert "data.name" in waiting["error"]
    for delay in BACKOFF:
        clock.advance(delay)
        j.settle(ctx)
    _deliver(ctx)
    assert [r.json()["data"]["data"] for r in receiver.requests] == [{"name": "Ann"}]
    by_contact = {r["contact_id"]: r for r in j.runs(ctx)}
    assert by_contact[str(by_user(ctx, "ann")["id"])]["status"] == "completed"
    failed = by_contact[nameless]
    assert failed["status"] == "failed"
    assert "contact.first_name" in failed["error"]
    assert [d["contact_id"] for d in webhooks.listing(ctx, status=None, after=None, limit=10)] == [
        str(by_user(ctx, "ann")["id"])
    ]


def test_a_value_gained_before_the_retry_is_sent(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver
) -> None:
    _publish(ctx, receiver.url, {"name": "{{ contact.first_name }}"})
    j.identify(ctx, "late", email="late@example.com")
    j.track(ctx, "late", "Signed Up")
    j.settle(ctx)
    j.identify(ctx, "late", first_name="Lately")
    clock.advance(BACKOFF[0] + timedelta(seconds=1))
    j.settle(ctx)
    _deliver(ctx)
    assert [r.json()["data"]["data"] for r in receiver.requests] == [{"name": "Lately"}]
    assert [r["status"] for r in j.runs(ctx)] == ["completed"]


@pytest.mark.parametrize(
    ("data", "place"),
    [
        ({"seats": "{{ event.seats "}, "data.seats"),
        ({"deep": {"list": ["ok", "{% if %}"]}}, "data.deep.list[1]"),
        ({"name": "{{ contact.first_name | shout }}"}, "data.name"),
        ({"x": "{% for i in (1..500) %}{% for j in (1..500) %}{{ j }}{% endfor %}{% endfor %}"}, "data.x"),
        ({"y": ["{% if event.big %}{% for i in (1..50000) %}.{% endfor %}{% endif %}"]}, "data.y[0]"),
    ],
)
def test_liquid_errors_in_data_refuse_the_journey_when_saved(
    client: TestClient, admin_key: str, data: dict[str, Any], place: str
) -> None:
    step = {"id": "hook", "type": "webhook", "url": "https://hooks.example.com/x", "data": data}
    definition = {"name": "Bad", "trigger": {"type": "event", "event": "Go"}, "steps": [step]}
    answer = client.post(
        "/api/v1/journeys", json={"definition": definition}, headers={"Authorization": f"Bearer {admin_key}"}
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_journey"
    assert place in error["message"]
    listed = client.get("/api/v1/journeys", headers={"Authorization": f"Bearer {admin_key}"}).json()
    assert listed["data"] == []


def test_data_over_a_limit_for_one_contact_fails_only_that_contacts_step(
    ctx: AppContext, receiver: HttpReceiver
) -> None:
    _publish(ctx, receiver.url, {"dots": "{% for i in (1..event.n) %}.{% endfor %}"})
    j.identify(ctx, "few", email="few@example.com")
    j.identify(ctx, "many", email="many@example.com")
    j.settle(ctx)
    j.track(ctx, "few", "Signed Up", n=3)
    j.track(ctx, "many", "Signed Up", n=5_000_000)
    j.settle(ctx)
    _deliver(ctx)
    assert [r.json()["data"]["data"] for r in receiver.requests] == [{"dots": "..."}]
    (held,) = [s for s in j.steps(ctx) if s["error"]]
    assert (held["contact_id"], held["status"]) == (str(by_user(ctx, "many")["id"]), "pending")
    assert "data.dots" in held["error"]
    assert "limit" in held["error"]


def test_a_batch_costs_the_same_statements_for_3_or_12_contacts(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver
) -> None:
    wait = {"id": "wait", "type": "wait", "duration": "1h", "next": "hook"}
    hook = {"id": "hook", "type": "webhook", "url": receiver.url, "data": DATA}
    definition = {"name": "Batch", "trigger": {"type": "event", "event": "Signed Up"}, "steps": [wait, hook]}
    j.publish(ctx, {**definition, "variables": {"plan": "pro"}})

    def round_of(users: list[str]) -> int:
        for user in users:
            j.identify(ctx, user, email=f"{user}@example.com", first_name=user)
            j.track(ctx, user, "Signed Up", seats=1)
        j.settle(ctx)
        clock.advance(timedelta(hours=1))
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(args[2])

        sa.event.listen(ctx.db.engine, "before_cursor_execute", count)
        try:
            assert executor.run_due(ctx) == 2 * len(users)  # the wait and the webhook of each
        finally:
            sa.event.remove(ctx.db.engine, "before_cursor_execute", count)
        return len(statements)

    few = round_of([f"a{n}" for n in range(3)])
    many = round_of([f"b{n}" for n in range(12)])
    assert few == many
    sent = webhooks.listing(ctx, status=None, after=None, limit=100)
    assert sorted(d["payload"]["data"]["who"]["name"] for d in sent)[:2] == ["a0 ", "a1 "]
    assert len(sent) == 15
