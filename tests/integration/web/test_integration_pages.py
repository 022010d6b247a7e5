"""The console's Integrations pages on both databases, through their forms: API keys and webhook
secrets shown once and never again, endpoints edited, tested, their log and replays; connectors'
health, dead letters replayed, credentials never shown; forms with their embed snippets; incoming
webhooks replayed; roles (viewer reads, every POST refused; marketer and sales kept out) and CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.capture.models import form_submissions
from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_audit, connector_outbox
from leadflow.crm import service as crm
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.webhooks import inbound_sources
from leadflow.webhooks.models import inbound_webhooks, webhook_deliveries
from tests.integration.web.conftest import sign_in

ADMIN = "user:admin@example.com"
FORM = (
    '{"name": "Newsletter", "fields": [{"name": "email", "label": "Email", "type": "email",'
    ' "required": true}, {"name": "first_name", "label": "First name"}]}'
)


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def _found(pattern: str, html: str) -> str:
    match = re.search(pattern, html)
    assert match, pattern
    return match.group(1)


def test_api_key_secret_shown_once_then_revoked(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    assert client.get("/app/integrations/keys").text.count("data-key=") == 0
    refused = client.post("/app/integrations/keys", data={"name": "Zapier", "csrf": csrf})
    assert refused.status_code == 422  # no scope chosen
    made = client.post(
        "/app/integrations/keys", data={"name": "Zapier", "scopes": ["read", "write"], "csrf": csrf}
    )
    assert made.status_code == 201
    secret = _found(r'value="(lf_[^"]+)" data-secret', made.text)
    key_id = _found(r'data-key="([^"]+)"', made.text)
    listing = client.get("/app/integrations/keys").text
    assert secret not in listing
    assert "data-secret" not in listing
    assert f"<code>{secret[:10]}…</code>" in listing
    assert "read, write" in listing
    api = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/forms", headers=api).status_code == 200
    assert client.post(f"/app/integrations/keys/{key_id}/revoke", data={}).status_code == 403  # no CSRF
    revoked = client.post(f"/app/integrations/keys/{key_id}/revoke", data={"csrf": csrf})
    assert revoked.status_code == 200
    assert "Key revoked" in revoked.text
    assert client.get("/api/v1/forms", headers=api).status_code == 401  # the key cache forgot it at once
    assert _audit(ctx, key_id) == [("key.created", ADMIN), ("key.revoked", ADMIN)]


def test_webhook_endpoint_secret_once_edit_test_log_and_replays(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    form: dict[str, Any] = {"url": "https://hooks.example.com/in", "description": "CRM", "csrf": csrf}
    bad = client.post("/app/integrations/webhooks", data={**form, "event_types": ["no.such"]})
    assert bad.status_code == 422
    assert "unknown event types" in bad.text
    made = client.post(
        "/app/integrations/webhooks", data={**form, "event_types": ["segment.entered"], "rate_limit": "5"}
    )
    assert made.status_code == 201
    secret = _found(r'value="(whsec_[^"]+)" data-secret', made.text)
    endpoint_id = _found(r'href="/app/integrations/webhooks/([^"]+)">Go to', made.text)
    url = f"/app/integrations/webhooks/{endpoint_id}"
    page = client.get(url).text
    assert secret not in page
    assert "5 per second" in page
    assert secret not in client.get("/app/integrations/webhooks").text

    edit = {**form, "description": "CRM v2", "event_types": ["*"], "rate_limit": ""}
    assert client.post(url, data=edit).status_code == 200
    assert "CRM v2" in client.get(url).text
    assert "none" in client.get(url).text  # rate limit cleared
    rotated = client.post(f"{url}/rotate", data={"grace_hours": "1", "csrf": csrf})
    fresh = _found(r'value="(whsec_[^"]+)" data-secret', rotated.text)
    assert fresh != secret
    assert "previous secret also signs" in rotated.text
    client.post(f"{url}/active", data={"active": "0", "csrf": csrf})
    assert "data-state>inactive" in client.get(url).text
    assert client.post(f"{url}/test", data={"csrf": csrf}).status_code == 409  # an inactive endpoint
    client.post(f"{url}/active", data={"active": "1", "csrf": csrf})

    tested = client.post(f"{url}/test", data={"csrf": csrf}, follow_redirects=False)
    assert tested.status_code == 303
    delivery_id = tested.headers["location"].split("/")[-1].split("?")[0]
    shown = client.get(tested.headers["location"]).text
    assert "webhook.test" in shown
    assert "data-status>queued" in shown
    with ctx.db.write() as conn:  # as the deliverer records a refused attempt
        conn.execute(
            webhook_deliveries.update()
            .where(webhook_deliveries.c.id == delivery_id)
            .values(
                status="failed",
                attempts=3,
                error="HTTP 500",
                response_code=500,
                response_body="boom",
                duration_ms=12,
                request_headers={"webhook-id": delivery_id},
            )
        )
    shown = client.get(f"/app/integrations/webhooks/deliveries/{delivery_id}").text
    assert "<strong>500</strong> in 12 ms" in shown
    assert "boom" in shown
    assert "&#34;leadflow webhook test&#34;" in shown or "leadflow webhook test" in shown
    log = client.get(url, params={"status": "failed"}).text
    assert f'data-delivery="{delivery_id}"' in log
    assert 'data-stat="failed">1<' in log
    again = client.post(
        f"/app/integrations/webhooks/deliveries/{delivery_id}/replay",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    replica = again.headers["location"].split("/")[-1].split("?")[0]
    assert replica != delivery_id
    assert "the original delivery" in client.get(again.headers["location"]).text
    since = (clock.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    bulk = client.post(f"{url}/replay", data={"since": since, "csrf": csrf})
    assert "1 failed deliveries sent again" in bulk.text
    assert client.post(f"{url}/replay", data={"since": "yesterday", "csrf": csrf}).status_code == 422
    assert client.get(url, params={"status": "queued"}).text.count("data-delivery=") == 2
    assert [a for a, _ in _audit(ctx, endpoint_id)] == [
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "webhook_endpoint.secret_rotated",
        "webhook_endpoint.updated",
        "webhook_endpoint.updated",
        "webhook_endpoint.test_sent",
        "webhook_endpoint.failed_replayed",
    ]
    assert {actor for _, actor in _audit(ctx, endpoint_id)} == {ADMIN}
    assert _audit(ctx, delivery_id) == [("webhook_delivery.replayed", ADMIN)]
    assert client.get(url, params={"cursor": "not-ours"}).status_code == 400


def _dead_letter(ctx: AppContext, connector_id: str, clock: VirtualClock) -> int:
    now = clock.now()
    with ctx.db.write() as conn:
        row = {"connector_id": connector_id, "kind": "contact", "state": "dead", "attempts": 8}
        made = conn.execute(
            connector_outbox.insert().values(
                **row,
                local_id="c1",
                enqueued_at=now,
                next_at=now,
                dead_at=now,
                last_error="HTTP 400 bad email",
            )
        )
        conn.execute(
            connector_audit.insert().values(
                connector_id=connector_id,
                kind="contact",
                local_id="c1",
                contact_id="c1",
                field="email",
                old_value=None,
                new_value="ann@example.com",
                direction="push",
                outcome="written",
                at=now,
            )
        )
        return int(made.inserted_primary_key[0])


def test_connector_health_dead_letter_replay_mapping_and_sealed_credentials(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    made = connectors.create(
        ctx,
        {
            "vendor": "hubspot",
            "name": "Main CRM",
            "credentials": {"access_token": "pat-na1-SECRET"},
            "host": "https://crm.invalid",  # no such host: "test connection" cannot reach it
        },
        actor="test",
    )
    dead_id = _dead_letter(ctx, made["id"], clock)
    csrf = sign_in(client, "admin@example.com")
    listing = client.get("/app/integrations/connectors").text
    assert f'data-connector="{made["id"]}"' in listing
    assert "data-dead>1<" in listing
    url = f"/app/integrations/connectors/{made['id']}"
    page = client.get(url).text
    assert "pat-na1-SECRET" not in page
    assert "set (sealed, never shown)" in page
    assert f'data-dead-letter="{dead_id}"' in page
    assert "HTTP 400 bad email" in page
    assert "ann@example.com" in page  # the audit's new value

    replayed = client.post(f"{url}/replay", data={"id": str(dead_id), "csrf": csrf})
    assert "1 dead letters due again" in replayed.text
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(connector_outbox).where(connector_outbox.c.id == dead_id)).one()
    assert (row.state, row.attempts, row.dead_at) == ("pending", 0, None)
    assert _audit(ctx, made["id"])[-1] == ("connector.dead_letters_replayed", ADMIN)
    since = client.post(f"{url}/replay", data={"since": clock.now().strftime("%Y-%m-%dT%H:%M"), "csrf": csrf})
    assert "0 dead letters due again" in since.text

    tested = client.post(f"{url}/test", data={"csrf": csrf})
    assert tested.status_code == 502
    assert 'role="alert"' in tested.text
    assert "pat-na1-SECRET" not in tested.text

    bad = client.post(f"{url}/settings", data={"mapping": "[{", "triggers": "{}", "csrf": csrf})
    assert bad.status_code == 422
    assert "[{" in bad.text  # the text is kept to be corrected
    mapping = '[{"to": "email", "from": "email"}, {"to": "firstname", "from": "first_name"}]'
    saved = client.post(f"{url}/settings", data={"mapping": mapping, "triggers": "{}", "csrf": csrf})
    assert saved.status_code == 200
    assert len(connectors.get(ctx, made["id"])["mapping"]) == 2
    assert _audit(ctx, made["id"])[-1] == ("connector.updated", ADMIN)
    assert client.get(url, params={"audit_before": "x"}).status_code == 400


def test_form_created_by_json_with_embed_snippets_and_submissions(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    bad = client.post(
        "/app/integrations/forms", data={"definition": '{"name": "x", "fields": []}', "csrf": csrf}
    )
    assert bad.status_code == 422
    made = client.post(
        "/app/integrations/forms", data={"definition": FORM, "csrf": csrf}, follow_redirects=False
    )
    assert made.status_code == 303
    url = made.headers["location"].split("?")[0]
    form_id = url.split("/")[-1]
    with ctx.db.write() as conn:
        conn.execute(
            form_submissions.insert().values(
                id="s1", form_id=form_id, email="ann@example.com", status="single", created_at=clock.now()
            )
        )
    page = client.get(url).text
    assert "data-submissions>1<" in page
    assert 'id="snippet-script" readonly' in page
    assert f"data-leadflow-form=&#34;{form_id}&#34;" in page or f'data-leadflow-form="{form_id}"' in page
    assert 'id="snippet-html" readonly' in page
    assert 'data-copy="snippet-script"' in page
    assert 'src="/app/static/integrations.js"' in page
    assert client.get("/app/static/integrations.js").status_code == 200
    assert "data-submissions>1<" in client.get("/app/integrations/forms").text
    renamed = client.post(url, data={"definition": '{"name": "Weekly letter"}', "csrf": csrf})
    assert renamed.status_code == 200
    assert "Form: Weekly letter" in renamed.text
    assert _audit(ctx, form_id) == [("form.created", ADMIN), ("form.updated", ADMIN)]


def test_incoming_webhook_failed_is_listed_and_replayed(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    inbound_sources.create(
        ctx, name="stripe", kind="stripe", secret="whsec_abc123", tolerance=None, active=True, actor="test"
    )
    with ctx.db.write() as conn:
        conn.execute(
            inbound_webhooks.insert().values(
                id="in1",
                source="stripe",
                kind="stripe",
                sender_id="evt_1",
                type="customer.created",
                received_at=clock.now(),
                body={"id": "evt_1", "type": "customer.created", "data": {"object": {}}},
                status="failed",
                error="no email",
            )
        )
    csrf = sign_in(client, "admin@example.com")
    page = client.get("/app/integrations/incoming").text
    assert 'data-source="stripe"' in page
    assert "whsec_abc123" not in page
    assert 'data-inbound="in1"' in page
    assert "no email" in page
    replayed = client.post("/app/integrations/incoming/in1/replay", data={"csrf": csrf})
    assert replayed.status_code == 200
    assert "Failed again" in replayed.text
    assert _audit(ctx, "in1") == [("inbound_webhook.replayed", ADMIN)]
    assert (
        client.get("/app/integrations/incoming", params={"status": "processed"}).text.count("data-inbound=")
        == 0
    )


def test_marketer_and_sales_are_kept_out(client: TestClient, user_of: Callable[..., crm.User]) -> None:
    for role in ("marketer", "sales"):
        user_of(role)
        with TestClient(client.app) as other:
            csrf = sign_in(other, f"{role}@example.com")
            assert "/app/integrations" not in other.get("/app/account").text  # not in their menu
            for path in ("/app/integrations", "/app/integrations/keys", "/app/integrations/webhooks"):
                assert other.get(path).status_code == 403, (role, path)
            made = other.post("/app/integrations/keys", data={"name": "x", "scopes": "read", "csrf": csrf})
            assert made.status_code == 403, role


def test_viewer_reads_every_page_and_changes_nothing(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("viewer")
    connector = connectors.create(
        ctx, {"vendor": "hubspot", "name": "CRM", "credentials": {"access_token": "t"}}, actor="test"
    )
    dead_id = _dead_letter(ctx, connector["id"], clock)
    csrf = sign_in(client, "viewer@example.com")
    form_id = "f" * 26
    pages = [
        "/app/integrations",
        "/app/integrations/keys",
        "/app/integrations/webhooks",
        "/app/integrations/incoming",
        "/app/integrations/connectors",
        f"/app/integrations/connectors/{connector['id']}",
        "/app/integrations/forms",
    ]
    for path in pages:
        seen = client.get(path)
        assert seen.status_code == 200, path
        assert 'method="post" action="/app/integrations' not in seen.text, path
    assert "Integrations" in client.get("/app/account").text  # in the viewer's menu
    posts = [
        ("/app/integrations/keys", {"name": "x", "scopes": "read"}),
        ("/app/integrations/webhooks", {"url": "https://a.example.com", "event_types": "*"}),
        (f"/app/integrations/connectors/{connector['id']}/replay", {"id": str(dead_id)}),
        (f"/app/integrations/connectors/{connector['id']}/settings", {"mapping": "[]", "triggers": "{}"}),
        ("/app/integrations/forms", {"definition": FORM}),
        (f"/app/integrations/forms/{form_id}", {"definition": FORM}),
        ("/app/integrations/incoming/x/replay", {}),
        ("/app/integrations/webhooks/deliveries/x/replay", {}),
    ]
    for path, data in posts:
        assert client.post(path, data={**data, "csrf": csrf}).status_code == 403, path
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(connector_outbox.c.state)).scalar_one() == "dead"
        assert conn.execute(sa.text("SELECT count(*) FROM api_keys")).scalar_one() == 0
