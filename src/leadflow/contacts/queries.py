"""Read side of the contacts domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts.models import companies, contact_identities, contact_merges, contacts, touchpoints
from leadflow.contacts.schemas import Company, Contact
from leadflow.kernel.db import where_in
from leadflow.kernel.errors import NotFound

CONTACT_COLUMNS = [contacts.c[name] for name in Contact.model_fields]


def to_contact(row: Any) -> Contact:
    return Contact.model_validate(dict(row._mapping))


def live_id(conn: Connection, contact_id: str) -> str | None:
    """The id a contact lives under: itself, or the survivor it was merged into."""
    found = conn.execute(sa.select(contacts.c.id).where(contacts.c.id == contact_id)).scalar()
    if found:
        return str(found)
    survivor = conn.execute(
        sa.select(contact_merges.c.survivor_id).where(contact_merges.c.merged_id == contact_id)
    ).scalar()
    return str(survivor) if survivor else None


def get(conn: Connection, contact_id: str) -> Contact:
    resolved = live_id(conn, contact_id)
    row = (
        conn.execute(sa.select(*CONTACT_COLUMNS).where(contacts.c.id == resolved)).first()
        if resolved
        else None
    )
    if row is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    return to_contact(row)


def full_row(conn: Connection, contact_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    return dict(row._mapping)


@dataclass(frozen=True)
class ContactFilter:
    email: str | None = None
    q: str | None = None
    lifecycle_stage: str | None = None
    updated_since: datetime | None = None


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(conn: Connection, where: ContactFilter, *, after: str | None, limit: int) -> list[Contact]:
    """Contacts in id order (creation order), ``limit`` of them after the id ``after``."""
    query = sa.select(*CONTACT_COLUMNS).order_by(contacts.c.id).limit(limit)
    if after:
        query = query.where(contacts.c.id > after)
    if where.email is not None:
        query = query.where(contacts.c.email == where.email)
    if where.lifecycle_stage:
        query = query.where(contacts.c.lifecycle_stage == where.lifecycle_stage)
    if where.updated_since:
        query = query.where(contacts.c.updated_at >= where.updated_since)
    if where.q:
        pattern = _like(where.q)
        query = query.where(
            sa.or_(
                *(
                    sa.func.lower(column).like(pattern, escape="\\")
                    for column in (
                        contacts.c.email,
                        contacts.c.first_name,
                        contacts.c.last_name,
                        contacts.c.user_id,
                    )
                ),
                sa.func.lower(
                    sa.func.coalesce(contacts.c.first_name, "")
                    + " "
                    + sa.func.coalesce(contacts.c.last_name, "")
                ).like(pattern, escape="\\"),
            )
        )
    return [to_contact(row) for row in conn.execute(query)]


def by_ids(conn: Connection, ids: Sequence[str]) -> list[Contact]:
    """Contacts by id (live ids only), in one query."""
    if not ids:
        return []
    query = where_in(conn, sa.select(*CONTACT_COLUMNS), contacts.c.id, list(dict.fromkeys(ids)))
    return [to_contact(row) for row in conn.execute(query)]


def live_ids(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """For each given id that exists, the id it lives under (itself, or its merge survivor)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    found = {
        row[0]: row[0]
        for row in conn.execute(where_in(conn, sa.select(contacts.c.id), contacts.c.id, wanted))
    }
    merges = sa.select(contact_merges.c.merged_id, contact_merges.c.survivor_id)
    for row in conn.execute(where_in(conn, merges, contact_merges.c.merged_id, wanted)):
        found[row.merged_id] = row.survivor_id
    return found


def company_peers(conn: Connection, contact_ids: Sequence[str]) -> set[str]:
    """Every contact sharing a company with one of these (a ``group`` call changes them all)."""
    if not contact_ids:
        return set()
    theirs = where_in(conn, sa.select(contacts.c.company_id), contacts.c.id, list(contact_ids)).where(
        contacts.c.company_id.is_not(None)
    )
    return set(
        conn.execute(
            sa.select(contacts.c.id).where(contacts.c.company_id.in_(theirs.scalar_subquery()))
        ).scalars()
    )


def merged_ids(conn: Connection, contact_id: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(contact_merges.c.merged_id).where(contact_merges.c.survivor_id == contact_id)
        ).scalars()
    )


def identities(conn: Connection, contact_id: str) -> list[dict[str, Any]]:
    table = contact_identities
    query = sa.select(table.c.kind, table.c.value, table.c.created_at).where(table.c.contact_id == contact_id)
    return [dict(row._mapping) for row in conn.execute(query.order_by(table.c.created_at, table.c.value))]


def touchpoints_of(conn: Connection, contact_id: str) -> list[dict[str, Any]]:
    query = (
        sa.select(touchpoints)
        .where(touchpoints.c.contact_id == contact_id)
        .order_by(touchpoints.c.occurred_at)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def company(conn: Connection, company_id: str) -> Company:
    row = conn.execute(
        sa.select(companies).where(sa.or_(companies.c.id == company_id, companies.c.group_id == company_id))
    ).first()
    if row is None:
        raise NotFound(f"no company {company_id}", code="company_not_found")
    return Company.model_validate(dict(row._mapping))


def company_exists(conn: Connection, company_id: str) -> bool:
    return conn.execute(sa.select(companies.c.id).where(companies.c.id == company_id)).first() is not None


def list_companies(conn: Connection, *, q: str | None, after: str | None, limit: int) -> list[Company]:
    query = sa.select(companies).order_by(companies.c.id).limit(limit)
    if after:
        query = query.where(companies.c.id > after)
    if q:
        query = query.where(sa.func.lower(companies.c.name).like(_like(q), escape="\\"))
    return [Company.model_validate(dict(row._mapping)) for row in conn.execute(query)]
