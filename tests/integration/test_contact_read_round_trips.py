"""A contact read through the API is one statement to the database: the contact, a merged id's survivor
and its topic preferences (each topic's choice, else its default) come back together; on PostgreSQL it
runs outside a transaction (no ``BEGIN``/``COMMIT``: three round trips saved on the API's hot path,
docs/benchmarks.md "API read path"). Pinned on both databases, a load-independent figure of that path."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from leadflow.kernel.context import AppContext
from leadflow.messaging.models import email_preferences
from tests.support.statements import counting


def test_a_contact_and_its_preferences_in_one_statement(
    client: TestClient, ctx: AppContext, make_key: Callable[..., str]
) -> None:
    admin = {"Authorization": f"Bearer {make_key('admin')}"}
    for key, default in (("news", True), ("offers", False), ("events", True)):
        answer = client.post(
            "/api/v1/email/topics",
            json={"key": key, "name": key.title(), "default_subscribed": default},
            headers=admin,
        )
        assert answer.status_code == 204, answer.text
    made = client.post(
        "/api/v1/contacts", json={"email": "ada@example.com", "first_name": "Ada"}, headers=admin
    ).json()
    with ctx.db.write() as conn:  # Ada's own choices: offers yes, events no
        conn.execute(
            email_preferences.insert(),
            [
                {"contact_id": made["id"], "topic": t, "subscribed": s, "updated_at": ctx.clock.now()}
                for t, s in (("offers", True), ("events", False))
            ],
        )
    reader = {"Authorization": f"Bearer {make_key('read', name='reader')}"}
    client.get(f"/api/v1/contacts/{made['id']}", headers=reader)  # the key is cached after its first use
    expected = {"news": True, "offers": True, "events": False}
    one_transaction = 0 if ctx.db.engine.dialect.name == "postgresql" else 1

    with counting(ctx) as by_id:
        got = client.get(f"/api/v1/contacts/{made['id']}", headers=reader)
    assert got.status_code == 200, got.text
    assert got.json()["email"] == "ada@example.com"
    assert got.json()["preferences"] == expected
    assert (by_id.statements, by_id.transactions) == (1, one_transaction)

    with counting(ctx) as by_email:
        page = client.get("/api/v1/contacts", params={"email": "ada@example.com"}, headers=reader)
    assert page.status_code == 200, page.text
    assert [c["preferences"] for c in page.json()["data"]] == [expected]
    assert (by_email.statements, by_email.transactions) == (1, one_transaction)

    with counting(ctx) as missing:
        assert client.get("/api/v1/contacts/C-nobody", headers=reader).status_code == 404
    assert missing.statements == 1
