"""CSV import: a row's company columns create or link the contact's company, one query per chunk.

Matching, in order: a company whose ``domain`` (or ``group_id``) is the row's ``company_domain``; else
one whose name is the row's ``company_name`` in any case, provided it has no other domain (it then
takes the row's domain); else a new company (its group id is the domain, or a new id when only a name
is given). When several companies match, the oldest wins. A matched company is linked, never renamed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from leadflow.contacts import queries
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.importer import ParsedRow
from leadflow.kernel.ids import new_id


def _known(
    conn: Connection, domains: list[str], names: list[str]
) -> tuple[dict[str, str], dict[str, tuple[str, str | None]]]:
    """Existing companies by domain (→ group id) and by lower-cased name (→ group id, domain), in one
    query. Names are found with the database's ``lower``: any case on PostgreSQL, ASCII case only on
    SQLite (``Ärzte`` there does not find ``ÄRZTE``)."""
    by_domain: dict[str, str] = {}
    by_name: dict[str, tuple[str, str | None]] = {}
    for row in conn.execute(queries.companies_named(domains, names)):
        if row.domain:
            by_domain.setdefault(row.domain.lower(), row.group_id)
        if row.group_id in domains:
            by_domain.setdefault(row.group_id, row.group_id)
        if row.name:
            by_name.setdefault(row.name.lower(), (row.group_id, row.domain))
    return by_domain, by_name


def link(conn: Connection, batch: ProfileBatch, rows: Sequence[ParsedRow]) -> None:
    """Set ``company_id`` on the change set of every row that names a company (see the module rules)."""
    wanted = [r for r in rows if r.company_domain or r.company_name]
    if not wanted:
        return
    domains = sorted({r.company_domain for r in wanted if r.company_domain})
    names = sorted({r.company_name.lower() for r in wanted if r.company_name})
    by_domain, by_name = _known(conn, domains, names)
    chosen: dict[int, str] = {}
    fresh: dict[str, tuple[str | None, str | None]] = {}  # group id -> (name, domain) of new companies
    adopt_domain: dict[str, str] = {}  # group id of a domain-less company matched by name -> domain
    for row in wanted:
        name = row.company_name.lower() if row.company_name else None
        gid = by_domain.get(row.company_domain) if row.company_domain else None
        if gid is None and name is not None and name in by_name:
            named, named_domain = by_name[name]
            if not row.company_domain:
                gid = named
            elif not named_domain:
                gid = named
                adopt_domain.setdefault(gid, row.company_domain)
                by_domain[row.company_domain] = gid
                by_name[name] = (gid, row.company_domain)
        if gid is None:
            gid = row.company_domain or new_id()
            fresh[gid] = (row.company_name, row.company_domain)
            if row.company_domain:
                by_domain[row.company_domain] = gid
            if name is not None:
                by_name.setdefault(name, (gid, row.company_domain))
        chosen[row.line] = gid
    batch.preload(group_ids=sorted(set(chosen.values())))
    for row in wanted:
        company = batch.company(chosen[row.line])
        if company.group_id in fresh and not company.persisted and company.name is None:
            company.name, company.domain = fresh[company.group_id]
        elif company.group_id in adopt_domain and not company.domain:
            company.domain = adopt_domain[company.group_id]
            company.updated_at, company.dirty = batch.now, True
        row.changes.company_id = company.id
