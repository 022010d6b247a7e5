"""Reading profiles straight from the database in tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadflow.contacts.models import companies, contact_identities, contacts, touchpoints
from leadflow.events.models import events
from leadflow.kernel.context import AppContext


def all_contacts(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(contacts).order_by(contacts.c.created_at))]


def only_contact(ctx: AppContext) -> dict[str, Any]:
    found = all_contacts(ctx)
    assert len(found) == 1, found
    return found[0]


def by_user(ctx: AppContext, user_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        contact_id = conn.execute(
            sa.select(contact_identities.c.contact_id).where(
                contact_identities.c.kind == "user", contact_identities.c.value == user_id
            )
        ).scalar_one()
        return dict(conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).one()._mapping)


def events_of(ctx: AppContext, contact_id: str, *, internal: bool = False) -> list[str]:
    """Names of a contact's events in arrival order (leadflow's internal ones only if asked)."""
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.type, events.c.event, events.c.name)
            .where(
                events.c.contact_id == contact_id,
                sa.or_(sa.true() if internal else sa.false(), events.c.source != "internal"),
            )
            .order_by(events.c.id)
        )
        return [r.event or r.name or r.type for r in rows]


def all_companies(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(companies))]


def all_touchpoints(ctx: AppContext) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(touchpoints).order_by(touchpoints.c.id))]
