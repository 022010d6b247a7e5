"""The contact list's reads: its filter (:class:`ContactFilter`), the search by text (``q``, on
:data:`~leadflow.contacts.models.SEARCH_TEXT`) and the counts. :data:`SAMPLES` builds each statement for
the compile test."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts import preferences
from leadflow.contacts.models import SEPARATOR, contact_tags, contacts
from leadflow.contacts.queries.profiles import anywhere, by_email, contact_select, to_contacts
from leadflow.contacts.schemas import Contact
from leadflow.kernel.db import Sample


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
    params: dict[str, Any] = {"pattern": anywhere(text), "after": after or "", "size": limit}
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


def _text_condition(text: str, source: sa.FromClause = contacts) -> sa.ColumnElement[bool]:
    """``text`` in the email, a name, the user id or "first last", ignoring case: one ``LIKE`` on
    :data:`~leadflow.contacts.models.SEARCH_TEXT` (both sides lower-cased by the database). A text
    holding the separator (a tab) asks each part alone (rare: nothing is indexed for it)."""
    pattern = sa.func.lower(anywhere(text))
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


SAMPLES: list[Sample] = [
    lambda: counting(
        ContactFilter(q="ann", lifecycle_stage="lead", among=(sa.select(contact_tags.c.contact_id),))
    ),
    lambda: list(_text_statements(ContactFilter(q="ann"))),
    lambda: list(_text_statements(ContactFilter(q="ann", lifecycle_stage="lead"))),
]
