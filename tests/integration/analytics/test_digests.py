"""Scheduled KPI digests on both databases, on the virtual clock: due Monday 08:00 in the user's time
zone, sent once per period even by two workers at the same moment, the next one a week later; the API
manages them and refuses bad schedules (4xx)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from typing import Any

from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.smtp import SmtpTransport
from tests.integration.web.conftest import make_user
from tests.peers.smtp import SmtpPeer
from tests.support import journeys as j
from tests.support.events import send
from tests.support.http import bearer


def _digest_mail(ctx: AppContext) -> list[dict[str, Any]]:
    return [m for m in j.sent(ctx) if str(m["key"]).startswith("digest:")]


def _two_workers(ctx: AppContext) -> list[list[Any]]:
    start = threading.Barrier(2)
    found: list[list[Any]] = []

    def work() -> None:
        start.wait()
        found.append(analytics.send_due_digests(ctx))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return found


def test_a_digest_goes_once_per_period(
    client: TestClient, ctx: AppContext, clock: VirtualClock, make_key: Any
) -> None:
    admin, viewer = make_user(ctx, "admin", password=None), make_user(ctx, "viewer", password=None)
    headers = bearer(make_key("read", "write"))
    made = client.post("/api/v1/analytics/digests", json={"user_ids": [admin.id, viewer.id]}, headers=headers)
    assert made.status_code == 201, made.text
    digest = made.json()
    assert digest["cron"] == "0 8 * * 1"
    assert digest["timezone"] == admin.timezone
    due = datetime.fromisoformat(digest["next_at"])
    assert due > clock.now()
    assert analytics.send_due_digests(ctx) == []  # not yet
    clock.advance(due - clock.now() + timedelta(minutes=1))
    runs = _two_workers(ctx)
    assert sorted(len(found) for found in runs) == [0, 1]
    mail = _digest_mail(ctx)
    assert sorted(m["to_address"] for m in mail) == ["admin@example.com", "viewer@example.com"]
    assert {m["kind"] for m in mail} == {"internal"}
    values = mail[0]["context"]["vars"]
    assert values["subject"].startswith("Weekly KPI digest: ")
    assert [f["label"] for f in values["figures"]][:2] == ["Visitors", "Leads"]
    assert analytics.send_due_digests(ctx) == []  # this period is done
    after = analytics.get_digest(ctx, digest["id"]).next_at
    assert after - due == timedelta(days=7)
    clock.advance(timedelta(days=7))
    assert [d for d, _ in analytics.send_due_digests(ctx)] == [digest["id"]]
    assert len(_digest_mail(ctx)) == 4


def test_a_worker_down_for_weeks_sends_one_digest(ctx: AppContext, clock: VirtualClock) -> None:
    user = make_user(ctx, "marketer", password=None)
    data = analytics.DigestFields(user_ids=[user.id], cron="0 8 * * *", timezone="UTC")
    made = analytics.create_digest(ctx, data, actor="test")
    clock.advance(timedelta(days=20))
    assert len(analytics.send_due_digests(ctx)) == 1
    assert analytics.send_due_digests(ctx) == []
    assert analytics.get_digest(ctx, made.id).next_at > clock.now()
    assert len(_digest_mail(ctx)) == 1


def test_bad_digests_are_4xx(client: TestClient, ctx: AppContext, make_key: Any) -> None:
    user = make_user(ctx, "admin", password=None)
    headers = bearer(make_key("read", "write"))
    cases = [
        ({"user_ids": []}, "validation_error"),
        ({"user_ids": ["nobody"]}, "unknown_user"),
        ({"user_ids": [user.id], "cron": "every monday"}, "invalid_cron"),
        ({"user_ids": [user.id], "timezone": "Mars/Olympus"}, "invalid_timezone"),
    ]
    for body, code in cases:
        answer = client.post("/api/v1/analytics/digests", json=body, headers=headers)
        assert answer.status_code == 422, body
        assert answer.json()["error"]["code"] == code
    made = client.post("/api/v1/analytics/digests", json={"user_ids": [user.id]}, headers=headers).json()
    path = f"/api/v1/analytics/digests/{made['id']}"
    changed = client.put(path, json={"user_ids": [user.id], "cron": "0 9 * * 5"}, headers=headers)
    assert changed.json()["cron"] == "0 9 * * 5"
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404


def test_digest_and_alert_mails_are_delivered_as_html_and_text(ctx: AppContext, clock: VirtualClock) -> None:
    """The shipped templates render: a digest and an alert email reach a real SMTP peer, each with an
    HTML and a text part carrying the figures."""
    user = make_user(ctx, "admin", password=None)
    analytics.create_digest(ctx, analytics.DigestFields(user_ids=[user.id], timezone="UTC"), actor="test")
    rule = analytics.AlertRuleFields(
        name="Lag", metric="processing_lag", threshold=1, user_ids=[user.id], webhook=False
    )
    analytics.create_alert_rule(ctx, rule, actor="test")
    send(ctx, {"type": "track", "userId": "u1", "event": "Signed Up"})
    clock.advance(timedelta(days=7))
    assert len(analytics.send_due_digests(ctx)) == 1
    assert len(analytics.evaluate_alerts(ctx).opened) == 1
    with SmtpPeer() as peer:
        deliverer = Deliverer(ctx, SmtpTransport.from_url(peer.url, pool_size=1))
        assert deliverer.deliver_due() == 2
        deliverer.close()
        received = peer.wait_for(2)
    parsed = [message_from_bytes(item.data, policy=policy.default) for item in received]
    by_subject = {str(m["Subject"]): m for m in parsed}
    digest = next(m for s, m in by_subject.items() if s.startswith("Weekly KPI digest: "))
    alert = by_subject["[leadflow] Alert: Lag"]
    for message in (digest, alert):
        assert message["To"] == "admin@example.com"
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        assert html is not None
        assert text is not None
    assert "<td>Visitors</td>" in digest.get_body(("html",)).get_content()
    assert "Visitors: 0 (previous 0" in digest.get_body(("plain",)).get_content()
    assert "Threshold: 1" in alert.get_body(("plain",)).get_content()
