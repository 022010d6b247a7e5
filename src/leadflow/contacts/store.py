"""Set-based SQL for profile units of work: bulk loads by key, and one ordered bulk flush.

No statement here runs once per contact in a loop: loads take ``IN`` lists, writes are executemany
batches that the drivers pipeline (psycopg) or run in-process (SQLite).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts.models import (
    companies,
    contact_identities,
    contact_merges,
    contacts,
    erasure_suppressions,
    touchpoints,
)
from leadflow.contacts.state import CONTACT_FIELDS, CompanyState, ContactState
from leadflow.kernel.db import chunked

CHUNK = 5000
_UPDATABLE = [name for name in CONTACT_FIELDS if name != "id"]


def _in_chunks(conn: Connection, query_for: Any, values: Collection[str]) -> list[Any]:
    rows: list[Any] = []
    for chunk in chunked(sorted(set(values)), CHUNK):
        rows.extend(conn.execute(query_for(chunk)))
    return rows


def identities(conn: Connection, kind: str, values: Collection[str]) -> dict[str, str]:
    table = contact_identities
    rows = _in_chunks(
        conn,
        lambda chunk: sa.select(table.c.value, table.c.contact_id).where(
            table.c.kind == kind, table.c.value.in_(chunk)
        ),
        values,
    )
    return {row.value: row.contact_id for row in rows}


def contacts_by_email(conn: Connection, emails: Collection[str]) -> list[ContactState]:
    rows = _in_chunks(conn, lambda chunk: sa.select(contacts).where(contacts.c.email.in_(chunk)), emails)
    return [ContactState.from_row(row) for row in rows]


def contacts_by_id(conn: Connection, ids: Collection[str]) -> list[ContactState]:
    rows = _in_chunks(conn, lambda chunk: sa.select(contacts).where(contacts.c.id.in_(chunk)), ids)
    return [ContactState.from_row(row) for row in rows]


def survivors(conn: Connection, ids: Collection[str]) -> dict[str, str]:
    """For ids of contacts merged away, the contact each now lives in."""
    rows = _in_chunks(
        conn,
        lambda chunk: sa.select(contact_merges.c.merged_id, contact_merges.c.survivor_id).where(
            contact_merges.c.merged_id.in_(chunk)
        ),
        ids,
    )
    return {row.merged_id: row.survivor_id for row in rows}


def companies_by_group(conn: Connection, group_ids: Collection[str]) -> list[CompanyState]:
    rows = _in_chunks(
        conn, lambda chunk: sa.select(companies).where(companies.c.group_id.in_(chunk)), group_ids
    )
    return [
        CompanyState(
            id=row.id,
            group_id=row.group_id,
            name=row.name,
            domain=row.domain,
            industry=row.industry,
            size=row.size,
            traits=dict(row.traits or {}),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )
        for row in rows
    ]


def suppressed(conn: Connection, digests: Collection[str]) -> set[str]:
    table = erasure_suppressions
    rows = _in_chunks(conn, lambda chunk: sa.select(table.c.digest).where(table.c.digest.in_(chunk)), digests)
    return {row.digest for row in rows}


def write_companies(conn: Connection, items: Iterable[CompanyState]) -> None:
    fresh = [c.row() for c in items if not c.persisted]
    dirty = [{**c.row(), "b_id": c.id} for c in items if c.persisted and c.dirty]
    if fresh:
        conn.execute(companies.insert(), fresh)
    if dirty:
        columns = ("name", "domain", "industry", "size", "traits", "updated_at")
        conn.execute(
            companies.update()
            .where(companies.c.id == sa.bindparam("b_id"))
            .values({name: sa.bindparam(name) for name in columns}),
            dirty,
        )


def release_unique_values(conn: Connection, states: Iterable[ContactState]) -> None:
    """Clear the email / user id of persisted contacts that are giving them up in this unit of work,
    so the final values can be written in any order without tripping the unique indexes."""
    emails = [s.id for s in states if s.persisted and s.original_email and s.original_email != s.email]
    users = [s.id for s in states if s.persisted and s.original_user_id and s.original_user_id != s.user_id]
    for column, ids in (("email", emails), ("user_id", users)):
        for chunk in chunked(ids, CHUNK):
            conn.execute(contacts.update().where(contacts.c.id.in_(chunk)).values({column: None}))


def insert_contacts(conn: Connection, states: list[ContactState]) -> None:
    if states:
        conn.execute(contacts.insert(), [s.row() for s in states])


def update_contacts(conn: Connection, states: list[ContactState]) -> None:
    if not states:
        return
    statement = (
        contacts.update()
        .where(contacts.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(name) for name in _UPDATABLE})
    )
    conn.execute(
        statement, [{**{name: getattr(s, name) for name in _UPDATABLE}, "b_id": s.id} for s in states]
    )


def move_references(conn: Connection, pairs: list[tuple[str, str]]) -> None:
    """Point every row of this domain that names a merged contact at its survivor."""
    params = [{"loser": loser, "survivor": survivor} for loser, survivor in pairs]
    for table, column in (
        (contact_identities, contact_identities.c.contact_id),
        (touchpoints, touchpoints.c.contact_id),
        (contact_merges, contact_merges.c.survivor_id),
    ):
        conn.execute(
            table.update()
            .where(column == sa.bindparam("loser"))
            .values({column.name: sa.bindparam("survivor")}),
            params,
        )


def record_merges(conn: Connection, pairs: list[tuple[str, str]], at: Any) -> None:
    conn.execute(
        contact_merges.insert(),
        [{"merged_id": loser, "survivor_id": survivor, "merged_at": at} for loser, survivor in pairs],
    )


def delete_contacts(conn: Connection, ids: list[str]) -> None:
    for chunk in chunked(ids, CHUNK):
        conn.execute(contacts.delete().where(contacts.c.id.in_(chunk)))


def insert_identities(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(contact_identities.insert(), rows)


def insert_touchpoints(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(touchpoints.insert(), rows)
