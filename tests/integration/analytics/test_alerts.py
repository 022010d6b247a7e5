"""Threshold alerts on both databases, on the virtual clock: an incident opens once when the condition
starts (however often the worker evaluates, and from two workers), sends alert.opened once by email
and by webhook, and resolves once when it ends (alert.resolved once); deleting a rule resolves its
open incident (reason "rule deleted", notified once); the API lists and manages rules and incidents;
bad rules are 4xx."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from leadflow.analytics import alerts, store
from leadflow.analytics import service as analytics
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.webhooks import service as webhooks
from tests.integration.web.conftest import make_user
from tests.support import journeys as j
from tests.support.events import send
from tests.support.http import bearer


def _alert_mail(ctx: AppContext) -> list[dict[str, Any]]:
    return [m for m in j.sent(ctx) if str(m["key"]).startswith("alert:")]


def _alert_hooks(ctx: AppContext) -> list[dict[str, Any]]:
    return [
        d
        for d in webhooks.listing(ctx, status=None, after=None, limit=100)
        if d["event"].startswith("alert.")
    ]


def test_an_incident_opens_once_and_resolves_once(
    client: TestClient, ctx: AppContext, clock: VirtualClock, make_key: Any
) -> None:
    admin = make_user(ctx, "admin", password=None)
    webhooks.create_endpoint(
        ctx, url="https://hooks.example/alerts", event_types=["alert.opened", "alert.resolved"], actor="test"
    )
    headers = bearer(make_key("read", "write"))
    body = {"name": "Lagging", "metric": "processing_lag", "threshold": 60, "user_ids": [admin.id]}
    made = client.post("/api/v1/analytics/alerts/rules", json=body, headers=headers)
    assert made.status_code == 201, made.text
    rule = made.json()
    assert rule["webhook"] is True
    assert analytics.evaluate_alerts(ctx).opened == []  # nothing waits: nothing to say
    send(ctx, {"type": "track", "userId": "u1", "event": "Signed Up"})
    clock.advance(timedelta(seconds=30))
    assert analytics.evaluate_alerts(ctx).opened == []  # under the threshold
    clock.advance(timedelta(seconds=60))
    first, second = analytics.evaluate_alerts(ctx), analytics.evaluate_alerts(ctx)
    assert len(first.opened) == 1
    assert second.opened == []
    assert second.resolved == []
    opened = client.get("/api/v1/analytics/alerts/incidents", params={"open": True}, headers=headers).json()
    assert [(i["id"], i["rule_name"], i["opened_value"]) for i in opened] == [
        (first.opened[0], "Lagging", 90.0)
    ]
    mail = _alert_mail(ctx)
    assert [(m["to_address"], m["kind"]) for m in mail] == [("admin@example.com", "internal")]
    hooks = _alert_hooks(ctx)
    assert [h["event"] for h in hooks] == ["alert.opened"]
    assert hooks[0]["payload"]["contact"] is None
    assert hooks[0]["payload"]["incident_id"] == first.opened[0]
    j.settle(ctx)  # the backlog is processed: the condition ends
    clock.advance(timedelta(seconds=60))
    done, again = analytics.evaluate_alerts(ctx), analytics.evaluate_alerts(ctx)
    assert done.resolved == first.opened
    assert again.resolved == []
    assert again.opened == []
    assert [h["event"] for h in _alert_hooks(ctx)] == ["alert.opened", "alert.resolved"]
    assert len(_alert_mail(ctx)) == 2
    listed = client.get("/api/v1/analytics/alerts/incidents", headers=headers).json()
    assert len(listed) == 1
    assert listed[0]["resolved_at"] is not None
    assert listed[0]["resolved_value"] == 0.0


def test_deleting_a_rule_resolves_its_open_incident_once(
    client: TestClient, ctx: AppContext, clock: VirtualClock, make_key: Any
) -> None:
    admin = make_user(ctx, "admin", password=None)
    webhooks.create_endpoint(
        ctx, url="https://hooks.example/alerts", event_types=["alert.opened", "alert.resolved"], actor="test"
    )
    headers = bearer(make_key("read", "write"))
    body = {"name": "Lagging", "metric": "processing_lag", "threshold": 60, "user_ids": [admin.id]}
    rule = client.post("/api/v1/analytics/alerts/rules", json=body, headers=headers).json()
    other = analytics.create_alert_rule(
        ctx, analytics.AlertRuleFields(name="Other", metric="processing_lag", threshold=1), actor="test"
    )
    send(ctx, {"type": "track", "userId": "u1", "event": "Signed Up"})
    clock.advance(timedelta(seconds=90))
    opened = analytics.evaluate_alerts(ctx).opened
    assert len(opened) == 2
    deleted = client.delete(f"/api/v1/analytics/alerts/rules/{rule['id']}", headers=headers)
    assert deleted.status_code == 204
    still_open = analytics.alert_incidents(ctx, open_only=True)
    assert [i.rule_id for i in still_open] == [other.id]  # another rule's incident untouched
    mine = analytics.alert_incidents(ctx, rule_id=rule["id"])
    assert len(mine) == 1
    assert mine[0].resolved_at == clock.now()
    assert mine[0].resolved_value is None
    resolved = [h for h in _alert_hooks(ctx) if h["event"] == "alert.resolved"]
    assert [(h["payload"]["incident_id"], h["payload"]["reason"]) for h in resolved] == [
        (mine[0].id, alerts.RULE_DELETED)
    ]
    mail = [m for m in _alert_mail(ctx) if ":resolved:" in str(m["key"])]
    assert [m["to_address"] for m in mail] == ["admin@example.com"]
    assert "rule deleted" in str(mail[0]["context"])
    later = analytics.evaluate_alerts(ctx)  # the deleted rule's incident is not resolved again
    assert later.resolved == []
    assert len(_alert_hooks(ctx)) == 3  # two opened, one resolved


def test_two_workers_open_one_incident(ctx: AppContext, clock: VirtualClock) -> None:
    """Two evaluations that both saw no open incident: the unique open key lets one of them open it."""
    data = analytics.AlertRuleFields(name="Lag", metric="processing_lag", threshold=1, webhook=False)
    analytics.create_alert_rule(ctx, data, actor="test")
    send(ctx, {"type": "track", "userId": "u1", "event": "Signed Up"})
    clock.advance(timedelta(seconds=5))
    with ctx.db.write() as conn:  # another worker's incident, written between our read and our insert
        rule = conn.execute(store.ENABLED_RULES).one()
        conn.execute(
            store.open_incidents(conn.dialect.name),
            [
                {
                    "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
                    "rule_id": rule.id,
                    "subject": "",
                    "open_key": f"{rule.id}|",
                    "opened_at": clock.now(),
                    "opened_value": 5.0,
                }
            ],
        )
    assert alerts.evaluate_alerts(ctx).opened == []
    assert len(analytics.alert_incidents(ctx)) == 1


def test_bad_rules_are_4xx(client: TestClient, make_key: Any) -> None:
    headers = bearer(make_key("read", "write"))
    bad = client.post("/api/v1/analytics/alerts/rules", json={"name": "x", "metric": "mood"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "invalid_metric"
    unknown = {"name": "x", "metric": "bounce_rate", "user_ids": ["nobody"]}
    assert client.post("/api/v1/analytics/alerts/rules", json=unknown, headers=headers).status_code == 422
    made = client.post(
        "/api/v1/analytics/alerts/rules", json={"name": "Bounces", "metric": "bounce_rate"}, headers=headers
    ).json()
    assert made["threshold"] == 0.003
    path = f"/api/v1/analytics/alerts/rules/{made['id']}"
    changed = client.put(
        path, json={"name": "Bounces", "metric": "bounce_rate", "threshold": 0.01}, headers=headers
    )
    assert changed.json()["threshold"] == 0.01
    assert client.delete(path, headers=headers).status_code == 204
    assert client.get(path, headers=headers).status_code == 404
    read_only = bearer(make_key("read"))
    assert (
        client.post(
            "/api/v1/analytics/alerts/rules", json={"name": "x", "metric": "bounce_rate"}, headers=read_only
        ).status_code
        == 403
    )
