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
    contact_tags,
    contact_totals,
    contacts,
    erasure_suppressions,
    erasures,
    touchpoints,
)
from leadflow.contacts.state import CompanyState, ContactState
from leadflow.kernel.db import (
    bulk_insert,
    bulk_update,
    chunk_size,
    chunked,
    insert_for,
    insert_ignore,
    where_in,
)

CHUNK = 5000


def _select_in(
    conn: Connection, query: Any, column: sa.ColumnElement[Any], values: Collection[str]
) -> list[Any]:
    """Rows of ``query`` whose ``column`` is one of ``values``, in as few statements as the dialect allows."""
    rows: list[Any] = []
    for chunk in chunked(sorted(set(values)), chunk_size(conn)):
        rows.extend(conn.execute(where_in(conn, query, column, chunk)))
    return rows


def identities(conn: Connection, kind: str, values: Collection[str]) -> dict[str, str]:
    table = contact_identities
    query = sa.select(table.c.value, table.c.contact_id).where(table.c.kind == kind)
    return {row.value: row.contact_id for row in _select_in(conn, query, table.c.value, values)}


def contacts_by_email(conn: Connection, emails: Collection[str]) -> list[ContactState]:
    return [
        ContactState.from_row(row) for row in _select_in(conn, sa.select(contacts), contacts.c.email, emails)
    ]


def contacts_by_id(conn: Connection, ids: Collection[str]) -> list[ContactState]:
    return [ContactState.from_row(row) for row in _select_in(conn, sa.select(contacts), contacts.c.id, ids)]


def survivors(conn: Connection, ids: Collection[str]) -> dict[str, str]:
    """For ids of contacts merged away, the contact each now lives in."""
    query = sa.select(contact_merges.c.merged_id, contact_merges.c.survivor_id)
    return {
        row.merged_id: row.survivor_id for row in _select_in(conn, query, contact_merges.c.merged_id, ids)
    }


def companies_by_group(conn: Connection, group_ids: Collection[str]) -> list[CompanyState]:
    rows = _select_in(conn, sa.select(companies), companies.c.group_id, group_ids)
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
    return {row.digest for row in _select_in(conn, sa.select(table.c.digest), table.c.digest, digests)}


def write_companies(conn: Connection, items: Iterable[CompanyState]) -> None:
    companies_list = list(items)
    bulk_insert(conn, companies, [c.row() for c in companies_list if not c.persisted])
    columns = ("id", "name", "domain", "industry", "size", "traits", "updated_at")
    dirty = [
        {k: v for k, v in c.row().items() if k in columns} for c in companies_list if c.persisted and c.dirty
    ]
    bulk_update(conn, companies, "id", dirty)


def release_unique_values(conn: Connection, states: Iterable[ContactState]) -> None:
    """Clear the email / user id of persisted contacts that are giving them up in this unit of work,
    so the final values can be written in any order without tripping the unique indexes."""
    emails = [s.id for s in states if s.persisted and s.original_email and s.original_email != s.email]
    users = [s.id for s in states if s.persisted and s.original_user_id and s.original_user_id != s.user_id]
    for column, ids in (("email", emails), ("user_id", users)):
        for chunk in chunked(ids, CHUNK):
            conn.execute(contacts.update().where(contacts.c.id.in_(chunk)).values({column: None}))


def insert_contacts(conn: Connection, states: list[ContactState]) -> None:
    bulk_insert(conn, contacts, [s.row() for s in states])
    add_to_total(conn, len(states))


def add_to_total(conn: Connection, delta: int) -> None:
    """``delta`` contacts more (or fewer) in :data:`contact_totals`, in the caller's transaction."""
    if delta:
        insert = insert_for(conn.dialect.name, contact_totals)
        conn.execute(
            insert.values(id=1, contacts=delta).on_conflict_do_update(
                index_elements=["id"], set_={"contacts": contact_totals.c.contacts + insert.excluded.contacts}
            )
        )


def recount_total(conn: Connection) -> int:
    """Set :data:`contact_totals` from a count of the contacts (after rows were written around the
    engine, e.g. a bulk load); answers the count."""
    found = int(conn.execute(sa.select(sa.func.count()).select_from(contacts)).scalar_one())
    conn.execute(contact_totals.delete())
    conn.execute(contact_totals.insert().values(id=1, contacts=found))
    return found


def update_contacts(conn: Connection, states: list[ContactState]) -> None:
    bulk_update(conn, contacts, "id", [s.row() for s in states])


def move_tags(conn: Connection, pairs: list[tuple[str, str]]) -> None:
    """The survivor gets every tag of the merged contact (once)."""
    for loser, survivor in pairs:
        tags = sa.select(sa.literal(survivor), contact_tags.c.tag, contact_tags.c.created_at).where(
            contact_tags.c.contact_id == loser
        )
        conn.execute(
            insert_ignore(conn, contact_tags, ["contact_id", "tag"]).from_select(
                ["contact_id", "tag", "created_at"], tags
            )
        )
        conn.execute(contact_tags.delete().where(contact_tags.c.contact_id == loser))


def move_references(conn: Connection, pairs: list[tuple[str, str]]) -> None:
    """Point every row of this domain that names a merged contact at its survivor."""
    move_tags(conn, pairs)
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
    gone = 0
    for chunk in chunked(ids, CHUNK):
        gone += conn.execute(contacts.delete().where(contacts.c.id.in_(chunk))).rowcount or 0
    add_to_total(conn, -gone)


def insert_identities(conn: Connection, rows: list[dict[str, Any]]) -> None:
    bulk_insert(conn, contact_identities, rows)


def insert_touchpoints(conn: Connection, rows: list[dict[str, Any]]) -> None:
    bulk_insert(conn, touchpoints, rows)


def delete_profile(conn: Connection, contact_id: str) -> None:
    """An erased contact's own rows: touchpoints, tags, identities, merge records, then the contact."""
    for table, column in (
        (touchpoints, touchpoints.c.contact_id),
        (contact_tags, contact_tags.c.contact_id),
        (contact_identities, contact_identities.c.contact_id),
        (contact_merges, contact_merges.c.survivor_id),
    ):
        conn.execute(table.delete().where(column == contact_id))
    add_to_total(conn, -(conn.execute(contacts.delete().where(contacts.c.id == contact_id)).rowcount or 0))


def record_erasure(conn: Connection, record: dict[str, Any], digests: Iterable[str]) -> None:
    """The erasure record, and the digests of the erased ids (one kept once, however often erased)."""
    conn.execute(erasures.insert(), record)
    unique = sorted(set(digests))
    if unique:
        conn.execute(
            insert_ignore(conn, erasure_suppressions, ["digest"]),
            [{"digest": d, "erasure_id": record["id"]} for d in unique],
        )


def add_tags(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """``(contact_id, tag, created_at)`` rows in one statement; a tag the contact has is kept as it is."""
    conn.execute(insert_ignore(conn, contact_tags, ["contact_id", "tag"]), rows)


def remove_tags(conn: Connection, contact_ids: list[str], tags: list[str]) -> None:
    """These tags off these contacts, in one statement."""
    conn.execute(
        contact_tags.delete().where(contact_tags.c.contact_id.in_(contact_ids), contact_tags.c.tag.in_(tags))
    )
