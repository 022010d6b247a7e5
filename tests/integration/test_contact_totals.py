"""The kept total of contacts (``contact_totals``, the console's "Contacts now") equals a count of the
contacts after contacts are created by events, the API and an import, merged and erased, on both
databases; a recount (``leadflow analytics rebuild``) sets it back after rows written around the engine,
and migration 0026's backfill counts what is there."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

import leadflow
from leadflow.contacts import service as contacts
from leadflow.contacts.models import contact_totals
from leadflow.contacts.models import contacts as contacts_table
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send


def _both(ctx: AppContext) -> tuple[int, int]:
    with ctx.db.read() as conn:
        counted = int(conn.execute(sa.select(sa.func.count()).select_from(contacts_table)).scalar_one())
        return contacts.contact_count(conn), counted


def test_the_total_follows_creations_merges_and_erasures(
    ctx: AppContext, client: TestClient, make_key: Callable[..., str]
) -> None:
    assert _both(ctx) == (0, 0)
    send(ctx, *({"type": "identify", "userId": f"u{n}", "traits": {"n": n}} for n in range(6)))
    send(ctx, {"type": "page", "anonymousId": "a1", "properties": {"url": "https://site.example/"}})
    j.settle(ctx)
    assert _both(ctx) == (7, 7)
    send(ctx, {"type": "identify", "userId": "u1", "anonymousId": "a1"})  # the visitor was u1: one contact
    j.settle(ctx)
    assert _both(ctx) == (6, 6)
    headers = {"Authorization": f"Bearer {make_key('admin')}"}
    made = client.post("/api/v1/contacts", json={"email": "new@example.com"}, headers=headers)
    assert made.status_code == 201, made.text
    assert (
        client.post("/api/v1/contacts", json={"email": "new@example.com"}, headers=headers).status_code == 200
    )
    assert _both(ctx) == (7, 7)
    contacts.erase(ctx, by_user(ctx, "u2")["id"], actor="test")
    assert _both(ctx) == (6, 6)


def test_a_recount_and_the_migration_count_rows_written_around_the_engine(ctx: AppContext) -> None:
    send(ctx, {"type": "identify", "userId": "u1"})
    j.settle(ctx)
    rows: list[dict[str, Any]] = [
        {
            "id": f"C{n:025d}",
            "traits": {},
            "lifecycle_stage": "lead",
            "subscription_status": "subscribed",
            "consent": {},
        }
        for n in range(5)
    ]
    with ctx.db.write() as conn:  # a bulk load straight into the table (a bench, a restore)
        conn.execute(contacts_table.insert(), [{**r, **_times(ctx)} for r in rows])
    assert _both(ctx) == (1, 6)
    assert contacts.recount_contacts(ctx) == 6
    assert _both(ctx) == (6, 6)
    path = Path(leadflow.__file__).parent / "migrations" / "versions" / "0026_contact_totals.py"
    text = path.read_text()
    backfill = text.split('op.execute("', 1)[1].split('")', 1)[0]
    with ctx.db.write() as conn:
        conn.execute(contact_totals.delete())
        conn.exec_driver_sql(backfill)
    assert _both(ctx) == (6, 6)


def _times(ctx: AppContext) -> dict[str, Any]:
    now = ctx.clock.now()
    return {"created_at": now, "updated_at": now}
