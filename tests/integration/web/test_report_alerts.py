"""The reports area's alert and digest pages: an admin (or marketer) creates, turns off and deletes an
alert rule and schedules / deletes a digest by plain POSTs, each audited as the user; refused forms are
a 422 page with the reason; a viewer reads but changes nothing (403), a form without its CSRF token is
refused, sales is kept out."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in

ADMIN = "user:admin@example.com"


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def test_alert_rules_from_the_page(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    admin = user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    form = {"csrf": csrf, "name": "Bounces", "metric": "bounce_rate", "user": admin.id, "webhook": "1"}
    made = client.post("/app/reports/alerts", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    (rule,) = analytics.alert_rules(ctx)
    assert (rule.name, rule.threshold, rule.user_ids, rule.webhook) == ("Bounces", 0.003, [admin.id], True)
    page = client.get("/app/reports/alerts")
    assert f'data-rule="{rule.id}"' in page.text
    assert "Admin User" in page.text
    bad = client.post("/app/reports/alerts", data={**form, "metric": "mood"})
    assert bad.status_code == 422
    assert 'data-error="alert"' in bad.text
    assert "metric" in bad.text
    off = client.post(f"/app/reports/alerts/{rule.id}/enabled", data={"csrf": csrf, "enabled": "0"})
    assert off.status_code == 200
    assert analytics.get_alert_rule(ctx, rule.id).enabled is False
    assert client.post("/app/reports/alerts/nothing/delete", data={"csrf": csrf}).status_code == 404
    client.post(f"/app/reports/alerts/{rule.id}/delete", data={"csrf": csrf})
    assert analytics.alert_rules(ctx) == []
    assert [a for a, _ in _audit(ctx, rule.id)] == [
        "analytics.alert_rule.created",
        "analytics.alert_rule.updated",
        "analytics.alert_rule.deleted",
    ]
    assert {actor for _, actor in _audit(ctx, rule.id)} == {ADMIN}


def test_digests_from_the_page(client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]) -> None:
    marketer = user_of("marketer")
    csrf = sign_in(client, "marketer@example.com")
    form = {"csrf": csrf, "name": "Monday numbers", "user": marketer.id, "cron": "0 8 * * 1", "timezone": ""}
    assert client.post("/app/reports/digests", data=form, follow_redirects=False).status_code == 303
    (digest,) = analytics.digests(ctx)
    assert (digest.name, digest.timezone) == ("Monday numbers", marketer.timezone)
    assert f'data-digest="{digest.id}"' in client.get("/app/reports/digests").text
    bad = client.post("/app/reports/digests", data={**form, "cron": "mondays"})
    assert bad.status_code == 422
    assert "cron" in bad.text
    nobody = client.post("/app/reports/digests", data={"csrf": csrf, "cron": "0 8 * * 1"})
    assert nobody.status_code == 422
    client.post(f"/app/reports/digests/{digest.id}/delete", data={"csrf": csrf})
    assert analytics.digests(ctx) == []
    assert _audit(ctx, digest.id)[-1] == ("analytics.digest.deleted", "user:marketer@example.com")


def test_viewer_reads_changes_nothing_and_sales_is_out(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    viewer = user_of("viewer")
    csrf = sign_in(client, "viewer@example.com")
    for path in ("/app/reports/alerts", "/app/reports/digests"):
        page = client.get(path)
        assert page.status_code == 200
        assert "<h2>New" not in page.text
    form = {"csrf": csrf, "name": "x", "metric": "bounce_rate"}
    assert client.post("/app/reports/alerts", data=form).status_code == 403
    assert client.post("/app/reports/digests", data={"csrf": csrf, "user": viewer.id}).status_code == 403
    assert analytics.alert_rules(ctx) == []
    client.cookies.clear()
    user_of("admin")
    sign_in(client, "admin@example.com")
    assert client.post("/app/reports/alerts", data={"name": "x", "metric": "bounce_rate"}).status_code == 403
    client.cookies.clear()
    user_of("sales")
    sign_in(client, "sales@example.com")
    assert client.get("/app/reports/alerts").status_code == 403
    assert client.get("/app/reports/digests").status_code == 403
