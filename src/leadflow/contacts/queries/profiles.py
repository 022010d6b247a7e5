"""The contacts domain's profile, company and touchpoint reads (some for other domains, through
:mod:`leadflow.contacts.service`). The profile unit of work's bulk loads and writes are in
:mod:`leadflow.contacts.store`. :data:`SAMPLES` builds each statement-building function's statement for
the compile test."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts import preferences
from leadflow.contacts.models import (
    SEPARATOR,
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


@dataclass(frozen=True)
class ContactFilter:
    email: str | None = None
    q: str | None = None
    lifecycle_stage: str | None = None
    updated_since: datetime | None = None
    #: ``SELECT id`` statements the contact must be in (a segment rule, a KPI's contacts …)
    among: tuple[sa.Select[Any], ...] = ()


def search(conn: Connection, where: ContactFilter, *, after: str | None, limit: int) -> list[Contact]:
    """Contacts in id order (creation order), ``limit`` of them after the id ``after``.

    ``q`` ignores case with the database's ``lower``: every letter on PostgreSQL, ASCII only on SQLite.
    """
    if where == ContactFilter(email=where.email) and where.email is not None and limit > 0:
        return to_contacts(list(conn.execute(by_email(), {"email": where.email, "after": after or ""})))
    if where.q and SEPARATOR not in where.q and conn.dialect.name == "postgresql" and limit > 0:
        return to_contacts(text_page(conn, where, after, limit))
    query = filtered(contact_select(), where).order_by(contacts.c.id).limit(limit)
    if after:
        query = query.where(contacts.c.id > after)
    return to_contacts(list(conn.execute(query)))


PROBE = 1000
"""A text search looks for its page among this many contacts in id order first (see :func:`text_page`)."""
DENSE = 2
"""Matches among the probed contacts from which walking on in id order beats fetching every match by
trigram. Measured at a million contacts, a walk costs ~0.75 µs a contact read and the index ~10 µs a
match; the two cross near 0.2 % of contacts matching, 2 in a probe of 1,000."""


def text_page(conn: Connection, where: ContactFilter, after: str | None, limit: int) -> list[Any]:
    """A page of a ``q`` search on PostgreSQL (``limit`` rows of :func:`contact_select`), whichever way
    costs least for this text: one statement for a text that fills its page early, two otherwise.

    A page is the first matches in id order. A common text (a frequent name) is best found walking the
    primary key until the page is full; a rare one (part of one email) by the trigram index, then sorting
    the few matches. The planner cannot tell the two apart reliably (matches bunched in id order fool
    its estimate, and a wrong guess costs seconds at a million contacts), so this decides from the data:
    the page is first looked for among the next :data:`PROBE` contacts (a subquery bounded by ``LIMIT``:
    the walk stops when the page is full or the probe is done). A full page there is the answer. With
    fewer than :data:`DENSE` matches, and a text the trigram index can serve (three letters or digits in
    a row), every later match is fetched by index (a materialised set, so the planner cannot walk the key
    instead) and the first ones kept; otherwise the walk goes on from the last match. The answer is the
    same either way. ``q`` must not hold :data:`~leadflow.contacts.models.SEPARATOR`."""
    text = where.q or ""
    first, walk, by_index = _text_statements(where)
    params: dict[str, Any] = {"pattern": _like(text), "after": after or "", "size": limit}
    found = list(conn.execute(first, params))
    if len(found) >= limit:
        return found
    params.update(start=found[-1].id if found else after or "", size=limit - len(found))
    dense = len(found) >= DENSE or not re.search(r"[^\W_]{3}", text)
    return found + list(conn.execute(walk if dense else by_index, params))


_TEXT_PAGES: dict[int, tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]] = {}
preferences.on_change(_TEXT_PAGES.clear)


def _text_statements(where: ContactFilter) -> tuple[sa.Select[Any], sa.Select[Any], sa.Select[Any]]:
    """:func:`text_page`'s statements (the probe, the walk on, the fetch by index), with the binds
    ``pattern``, ``after``, ``start`` and ``size``; built once for a search by ``q`` alone."""
    alone = dataclasses.replace(where, q=None) == ContactFilter()
    if alone and PROBE in _TEXT_PAGES:
        return _TEXT_PAGES[PROBE]
    others = dataclasses.replace(where, q=None)
    pattern = sa.func.lower(sa.bindparam("pattern", type_=sa.Text))
    size = sa.bindparam("size", type_=sa.Integer)
    after = sa.bindparam("after", type_=contacts.c.id.type)
    window = sa.select(contacts).where(contacts.c.id > after).order_by(contacts.c.id).limit(PROBE)
    probe = window.subquery("probe")
    first = filtered(contact_select(probe), others, probe).where(
        probe.c.search_text.like(pattern, escape="\\")
    )
    later = (
        contacts.c.search_text.like(pattern, escape="\\"),
        contacts.c.id > sa.bindparam("start", type_=contacts.c.id.type),
    )
    walk = filtered(contact_select(), others).where(*later)
    matches = (
        filtered(sa.select(contacts.c.id), others).where(*later).cte("matches").prefix_with("MATERIALIZED")
    )
    chosen = sa.select(matches.c.id).order_by(matches.c.id).limit(size).scalar_subquery()
    built = (
        first.order_by(probe.c.id).limit(size),
        walk.order_by(contacts.c.id).limit(size),
        walk.where(contacts.c.id.in_(chosen)).order_by(contacts.c.id).limit(size),
    )
    if alone:
        _TEXT_PAGES[PROBE] = built
    return built


def _like(text: str) -> str:
    """``text`` anywhere, as a ``LIKE`` pattern (``\\`` escapes)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_condition(text: str, source: sa.FromClause = contacts) -> sa.ColumnElement[bool]:
    """``text`` in the email, a name, the user id or "first last", ignoring case: one ``LIKE`` on
    :data:`~leadflow.contacts.models.SEARCH_TEXT` (both sides lower-cased by the database). A text
    holding the separator (a tab) asks each part alone (rare: nothing is indexed for it)."""
    pattern = sa.func.lower(_like(text))
    if SEPARATOR not in text:
        return source.c.search_text.like(pattern, escape="\\")
    name = sa.func.coalesce(source.c.first_name, "") + " " + sa.func.coalesce(source.c.last_name, "")
    parts = (source.c.email, source.c.user_id, name)
    return sa.or_(*(sa.func.lower(part).like(pattern, escape="\\") for part in parts))


def filtered(query: sa.Select[Any], where: ContactFilter, source: sa.FromClause = contacts) -> sa.Select[Any]:
    """``query`` (over ``contacts``, or ``source``, a subquery of it) kept to the contacts ``where``
    describes."""
    c = source.c
    if where.email is not None:
        query = query.where(c.email == where.email)
    if where.lifecycle_stage:
        query = query.where(c.lifecycle_stage == where.lifecycle_stage)
    if where.updated_since:
        query = query.where(c.updated_at >= where.updated_since)
    for selection in where.among:
        query = query.where(c.id.in_(selection.correlate(None).scalar_subquery()))
    if where.q:
        query = query.where(_text_condition(where.q, source))
    return query


def counting(where: ContactFilter) -> sa.Select[Any]:
    """How many contacts ``where`` describes."""
    return filtered(sa.select(sa.func.count()).select_from(contacts), where)


def count_matching(conn: Connection, where: ContactFilter) -> int:
    return int(conn.execute(counting(where)).scalar_one())


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


def list_companies(conn: Connection, *, q: str | None, after: str | None, limit: int) -> list[Company]:
    query = sa.select(companies).order_by(companies.c.id).limit(limit)
    if after:
        query = query.where(companies.c.id > after)
    if q:
        query = query.where(sa.func.lower(companies.c.name).like(_like(q), escape="\\"))
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
    lambda: counting(
        ContactFilter(q="ann", lifecycle_stage="lead", among=(sa.select(contact_tags.c.contact_id),))
    ),
    lambda: [
        ids_holding(["a@example.com"]),
        with_email(sa.select(contact_tags.c.contact_id), contact_tags.c.contact_id),
    ],
]


# How many contacts there are (the console's dashboard): the kept total, one row (none yet: 0).
CONTACT_COUNT = sa.select(sa.func.coalesce(sa.func.sum(contact_totals.c.contacts), 0))


def contact_count(conn: Connection) -> int:
    return int(conn.execute(CONTACT_COUNT).scalar_one())
