"""The contacts domain's profile, company and touchpoint reads (some for other domains, through
:mod:`leadflow.contacts.service`). The profile unit of work's bulk loads and writes are in
:mod:`leadflow.contacts.store`. :data:`SAMPLES` builds each statement-building function's statement for
the compile test."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts import preferences
from leadflow.contacts.models import (
    companies,
    contact_identities,
    contact_merges,
    contact_tags,
    contact_totals,
    contacts,
    touchpoints,
)
from leadflow.contacts.schemas import Company, Contact
from leadflow.kernel.db import Sample, where_in
from leadflow.kernel.errors import NotFound

CONTACT_COLUMNS = [contacts.c[name] for name in Contact.model_fields if name in contacts.c]


def contact_select(source: sa.FromClause = contacts) -> sa.Select[Any]:
    """The columns a contact is shown with, its topic preferences included (one statement), from
    ``contacts`` or a subquery of it (``source``)."""
    columns = [source.c[column.name] for column in CONTACT_COLUMNS]
    return sa.select(*columns, preferences.preferences_column(source.c.id))


def to_contact(row: Any, fields: Sequence[str] | None = None) -> Contact:
    """A row of :func:`contact_select` as a :class:`Contact` (``fields``: the rows' names, if known). The
    dict is zipped from the row: ``{**row._mapping}`` cost more than the validation (9 µs a contact
    against 5)."""
    values = dict(zip(fields or row._fields, row, strict=True))
    values["preferences"] = values["preferences"] or {}
    return Contact.model_validate(values)


def to_contacts(rows: Sequence[Any]) -> list[Contact]:
    fields = rows[0]._fields if rows else ()
    return [to_contact(row, fields) for row in rows]


def live_id(conn: Connection, contact_id: str) -> str | None:
    """The id a contact lives under: itself, or the survivor it was merged into."""
    found = conn.execute(sa.select(contacts.c.id).where(contacts.c.id == contact_id)).scalar()
    if found:
        return str(found)
    survivor = conn.execute(
        sa.select(contact_merges.c.survivor_id).where(contact_merges.c.merged_id == contact_id)
    ).scalar()
    return str(survivor) if survivor else None


_BUILT: dict[str, sa.Select[Any]] = {}
preferences.on_change(_BUILT.clear)


def by_id() -> sa.Select[Any]:
    """A contact by its id (``:id``) or by an id merged into it, in one statement (one snapshot), built
    once: a read on the API's hot path."""
    if "id" not in _BUILT:
        wanted = sa.bindparam("id", type_=contacts.c.id.type)
        survivor = sa.select(contact_merges.c.survivor_id).where(contact_merges.c.merged_id == wanted)
        _BUILT["id"] = contact_select().where(
            sa.or_(contacts.c.id == wanted, contacts.c.id == survivor.scalar_subquery())
        )
    return _BUILT["id"]


def by_email() -> sa.Select[Any]:
    """The contact with the email ``:email`` (emails are unique: none or one) if its id comes after
    ``:after`` (``''`` for none: every id does), built once: the API's other hot read, the list filtered
    by email alone, which would otherwise build and key a new statement on every request."""
    if "email" not in _BUILT:
        _BUILT["email"] = contact_select().where(
            contacts.c.email == sa.bindparam("email", type_=contacts.c.email.type),
            contacts.c.id > sa.bindparam("after", type_=contacts.c.id.type),
        )
    return _BUILT["email"]


def get(conn: Connection, contact_id: str) -> Contact:
    """A contact by id, or by an id merged into it (one statement: fit for :meth:`Database.read_one`)."""
    row = conn.execute(by_id(), {"id": contact_id}).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    return to_contact(row)


def with_merged(conn: Connection, contact_id: str) -> list[str]:
    """The id a contact lives under, then every id merged into it; an unknown id is ``404``."""
    live = live_id(conn, contact_id)
    if live is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    return [live, *merged_ids(conn, live)]


def full_row(conn: Connection, contact_id: str) -> dict[str, Any]:
    row = conn.execute(sa.select(contacts).where(contacts.c.id == contact_id)).first()
    if row is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    return dict(row._mapping)


def by_ids(conn: Connection, ids: Sequence[str]) -> list[Contact]:
    """Contacts by id (live ids only), in one query."""
    if not ids:
        return []
    query = where_in(conn, contact_select(), contacts.c.id, list(dict.fromkeys(ids)))
    return to_contacts(list(conn.execute(query)))


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


#: A contact's tags, in order.
TAGS_OF = (
    sa.select(contact_tags.c.tag)
    .where(contact_tags.c.contact_id == sa.bindparam("contact_id"))
    .order_by(contact_tags.c.tag)
)


def companies_named(domains: Sequence[str], names: Sequence[str]) -> sa.Select[Any]:
    """Companies whose domain or group id is one of ``domains``, or whose lower-cased name is one of
    ``names`` (a CSV import's company columns), oldest first."""
    c = companies.c
    conditions: list[sa.ColumnElement[bool]] = []
    if domains:
        conditions += [c.domain.in_(list(domains)), c.group_id.in_(list(domains))]
    if names:
        conditions.append(sa.func.lower(c.name).in_(list(names)))
    return sa.select(c.group_id, c.domain, c.name).where(sa.or_(*conditions)).order_by(c.id)


def touchpoint_count(conn: Connection, contact_id: str) -> int:
    query = sa.select(sa.func.count()).select_from(touchpoints).where(touchpoints.c.contact_id == contact_id)
    return int(conn.execute(query).scalar_one())


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


def anywhere(text: str) -> str:
    """``text`` anywhere, as a ``LIKE`` pattern (``\\`` escapes; the case left to the caller)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_companies(conn: Connection, *, q: str | None, after: str | None, limit: int) -> list[Company]:
    query = sa.select(companies).order_by(companies.c.id).limit(limit)
    if after:
        query = query.where(companies.c.id > after)
    if q:
        query = query.where(sa.func.lower(companies.c.name).like(sa.func.lower(anywhere(q)), escape="\\"))
    return [Company.model_validate(dict(row._mapping)) for row in conn.execute(query)]


def company_contacts(conn: Connection, company_id: str, *, after: str | None, limit: int) -> list[Contact]:
    """A company's contacts in id order; the company may be named by its id or its group id."""
    found = company(conn, company_id)
    query = contact_select().where(contacts.c.company_id == found.id)
    if after:
        query = query.where(contacts.c.id > after)
    return to_contacts(list(conn.execute(query.order_by(contacts.c.id).limit(limit))))


def touchpoints_page(
    conn: Connection, contact_id: str, *, before: tuple[datetime, int] | None, limit: int
) -> list[dict[str, Any]]:
    """A contact's touchpoints, newest first, ``limit`` of them before ``(occurred_at, id)``."""
    t = touchpoints
    query = (
        sa.select(t)
        .where(t.c.contact_id == contact_id)
        .order_by(t.c.occurred_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    if before is not None:
        at, last_id = before
        query = query.where(sa.or_(t.c.occurred_at < at, sa.and_(t.c.occurred_at == at, t.c.id < last_id)))
    return [dict(row._mapping) for row in conn.execute(query)]


def id_for_email(conn: Connection, email: str) -> str | None:
    found = conn.execute(sa.select(contacts.c.id).where(contacts.c.email == email)).scalar()
    return str(found) if found else None


# --- reads other domains make through contacts.service (messaging: email variables, feedback) -------


def rows_of(conn: Connection, columns: Sequence[str], contact_ids: Sequence[str]) -> list[Any]:
    """The named columns of those of ``contact_ids`` that exist, in one query (none for no ids)."""
    if not contact_ids:
        return []
    query = sa.select(*(contacts.c[name] for name in columns))
    return list(conn.execute(where_in(conn, query, contacts.c.id, contact_ids)))


def company_rows_of(conn: Connection, columns: Sequence[str], company_ids: Sequence[str]) -> list[Any]:
    """The named columns of those of ``company_ids`` that exist, in one query (none for no ids)."""
    if not company_ids:
        return []
    query = sa.select(*(companies.c[name] for name in columns))
    return list(conn.execute(where_in(conn, query, companies.c.id, company_ids)))


def email_of(conn: Connection, contact_id: str) -> str | None:
    email = conn.execute(sa.select(contacts.c.email).where(contacts.c.id == contact_id)).scalar()
    return str(email) if email else None


def ids_holding(emails: Sequence[str]) -> sa.Select[Any]:
    """The ids of the contacts holding one of ``emails`` (to embed in another domain's statement)."""
    return sa.select(contacts.c.id).where(contacts.c.email.in_(list(emails)))


def with_email(query: sa.Select[Any], contact_id: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """``query`` joined to the contacts its ``contact_id`` names, keeping those with an email address."""
    return query.join(contacts, contacts.c.id == contact_id).where(
        contacts.c.email.is_not(None), contacts.c.email != ""
    )


# --- reads the journeys domain makes through contacts.service ---------------------------------------


def time_zones(conn: Connection, contact_ids: Sequence[str]) -> dict[str, str | None]:
    """Each contact's own time zone (None: not set), in one query (none for no ids)."""
    if not contact_ids:
        return {}
    query = where_in(conn, sa.select(contacts.c.id, contacts.c.timezone), contacts.c.id, list(contact_ids))
    return {row.id: row.timezone for row in conn.execute(query)}


def id_for_user(conn: Connection, user_id: str) -> str | None:
    """The contact a ``userId`` identifies, if any."""
    i = contact_identities.c
    found = conn.execute(sa.select(i.contact_id).where(i.kind == "user", i.value == user_id)).scalar()
    return str(found) if found else None


# --- what the crm domain embeds through contacts.service ---------------------------------------------


def lead_profiles() -> sa.Select[Any]:
    """Each contact's id, name, email, stage and dates: the CRM joins its leads to it (as a subquery,
    which both databases flatten into a join by primary key)."""
    c = contacts.c
    return sa.select(
        c.id, c.email, c.first_name, c.last_name, c.lifecycle_stage, c.company_id, c.created_at, c.updated_at
    )


def lead_sources(contact_ids: Sequence[str], stages: Sequence[str]) -> sa.Select[Any]:
    """``(contact_id, source)`` of those of ``contact_ids`` at one of ``stages``, to insert as CRM
    leads in one statement. The source is the ``source`` trait, else the first page touchpoint's source."""
    first_touch = (
        sa.select(touchpoints.c.source)
        .where(
            touchpoints.c.contact_id == contacts.c.id,
            touchpoints.c.kind == "page",
            touchpoints.c.source.is_not(None),
        )
        .order_by(touchpoints.c.occurred_at, touchpoints.c.id)
        .limit(1)
        .scalar_subquery()
    )
    source = sa.func.substr(sa.func.coalesce(contacts.c.traits["source"].as_string(), first_touch), 1, 255)
    return sa.select(contacts.c.id, source.label("source")).where(
        contacts.c.id.in_(list(contact_ids)), contacts.c.lifecycle_stage.in_(list(stages))
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    by_id,
    by_email,
    lead_profiles,
    lambda: lead_sources(["c1"], ["lead", "mql"]),
    lambda: companies_named(["example.com"], ["example"]),
    lambda: [
        ids_holding(["a@example.com"]),
        with_email(sa.select(contact_tags.c.contact_id), contact_tags.c.contact_id),
    ],
]


# How many contacts there are (the console's dashboard): the kept total, one row (none yet: 0).
CONTACT_COUNT = sa.select(sa.func.coalesce(sa.func.sum(contact_totals.c.contacts), 0))


def contact_count(conn: Connection) -> int:
    return int(conn.execute(CONTACT_COUNT).scalar_one())
