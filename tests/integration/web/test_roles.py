"""Roles in the console: who opens which page and who changes what; changes audited as the user."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in


def test_admin_invites_changes_role_and_deactivates(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    invite = {"name": "Sam", "email": "sam@example.com", "role": "sales", "csrf": csrf}
    assert client.post("/app/users", data=invite, follow_redirects=False).status_code == 303
    sam = next(u for u in crm.list_users(ctx, after=None, limit=50) if u.email == "sam@example.com")
    page = client.get("/app/users")
    assert 'data-user="sam@example.com"' in page.text
    assert "invited" in page.text
    with ctx.db.read() as conn:
        mailed = conn.execute(sa.text("SELECT to_address, kind FROM messages")).all()
    assert [(m.to_address, m.kind) for m in mailed] == [("sam@example.com", "internal")]
    client.post(f"/app/users/{sam.id}", data={"action": "role", "role": "marketer", "csrf": csrf})
    client.post(f"/app/users/{sam.id}", data={"action": "deactivate", "csrf": csrf})
    sam = crm.get_user(ctx, sam.id)
    assert (sam.role, sam.active) == ("marketer", False)
    bad = client.post(f"/app/users/{sam.id}", data={"action": "role", "role": "king", "csrf": csrf})
    assert bad.status_code == 422
    with ctx.db.read() as conn:
        actors = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"), {"id": sam.id}
        ).all()
    assert [(a.action, a.actor) for a in actors] == [
        ("crm.user_created", "user:admin@example.com"),
        ("crm.user_updated", "user:admin@example.com"),
        ("crm.user_updated", "user:admin@example.com"),
    ]


def test_sales_cannot_open_the_users_page_and_a_deactivated_user_is_out(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    sales = user_of("sales")
    sign_in(client, "sales@example.com")
    answer = client.get("/app/users")
    assert answer.status_code == 403
    assert "cannot open this page" in answer.text
    assert "/app/users" not in client.get("/app/").text  # not in its menu either
    crm.update_user(ctx, sales.id, crm.UserFields(active=False), actor="test")
    assert client.get("/app/", follow_redirects=False).status_code == 303


def test_viewer_cannot_change_anything(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    admin = user_of("admin")
    user_of("viewer")
    csrf = sign_in(client, "viewer@example.com")
    assert client.get("/app/").status_code == 200
    invite = {"name": "Eve", "email": "eve@example.com", "role": "admin", "csrf": csrf}
    assert client.post("/app/users", data=invite).status_code == 403
    assert (
        client.post(f"/app/users/{admin.id}", data={"action": "deactivate", "csrf": csrf}).status_code == 403
    )
    assert crm.get_user(ctx, admin.id).active
    assert len(crm.list_users(ctx, after=None, limit=50)) == 2
