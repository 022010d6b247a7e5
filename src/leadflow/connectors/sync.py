"""What a batch of contacts becomes at a vendor: the local records read set-based (one query per kind
for the whole batch) and turned into :class:`~leadflow.connectors.vendor.Record` values.

A contact's *view* is what the mapping reads: its columns, ``traits``, ``company`` (name, domain,
industry, traits), ``score`` and ``band``, ``owner`` (email, name of its lead's owner) and ``consent``.
A record whose rendered fields equal what was last written (the link's ``fields``) is not written again.
``subscription_status`` reads ``unsubscribed`` for an address messaging suppresses (a hard bounce,
a complaint, an unsubscribe): a vendor's marketing status (Mailchimp, Kit, an ActiveCampaign list)
never lets it market to an address leadflow may not.
The contact's company, deals and activities follow it when the connector syncs those objects: a
company or deal when new or changed, an activity once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.connectors import mapping, queries, store
from leadflow.connectors.config import Connector
from leadflow.connectors.vendor import ACTIVITY, COMPANY, CONTACT, DEAL, Record, Vendor
from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.messaging import service as messaging

COLUMNS = (
    "id",
    "email",
    "user_id",
    "first_name",
    "last_name",
    "phone",
    "lifecycle_stage",
    "subscription_status",
    "timezone",
    "traits",
    "consent",
    "company_id",
    "created_at",
    "updated_at",
)
COMPANY_COLUMNS = ("id", "name", "domain", "industry", "traits")


@dataclass
class Plan:
    """One batch's writes per kind, in the order they must run, and what is already known."""

    views: dict[str, dict[str, Any]]
    links: dict[str, dict[str, Any]]  # kind:local_id → link row
    writes: dict[str, list[Record]] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)  # contacts with nothing new to write
    missing: set[str] = field(default_factory=set)  # contacts gone (erased, merged away)
    skipped: set[str] = field(default_factory=set)  # never written and no email to match by
    owners_wanted: bool = False  # a contact maps an owner and the vendor's owners were not at hand
    company_of: dict[str, str] = field(default_factory=dict)  # contact → company id
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # kind:local_id → local row

    def link(self, kind: str, local_id: str) -> dict[str, Any] | None:
        return self.links.get(f"{kind}:{local_id}")

    def remote(self, kind: str, local_id: str | None) -> str | None:
        found = self.link(kind, local_id) if local_id else None
        return None if found is None else str(found["remote_id"])


def views(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each existing contact's view (see the module doc), read in one query per source."""
    found = _contact_rows(conn, contact_ids)
    if found:
        _complete(conn, found, {row.contact_id: row for row in conn.execute(queries.scores_of(list(found)))})
    return found


def _contact_rows(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    return {row.id: dict(row._mapping) for row in contacts.rows_of(conn, COLUMNS, contact_ids)}


def _complete(conn: Connection, found: dict[str, dict[str, Any]], scores: Mapping[str, Any]) -> None:
    """The views' company, score and band, owner and suppression (``found``: the contacts' rows)."""
    company_ids = sorted({v["company_id"] for v in found.values() if v["company_id"]})
    companies = {
        row.id: dict(row._mapping) for row in contacts.company_rows_of(conn, COMPANY_COLUMNS, company_ids)
    }
    owners = crm.owner_emails(conn, list(found))
    suppressed = messaging.suppressed(conn, [v["email"] for v in found.values() if v["email"]])
    for contact_id, view in found.items():
        if view["email"] in suppressed:
            view["subscription_status"] = "unsubscribed"
        view["company"] = companies.get(view["company_id"]) if view["company_id"] else None
        score = scores.get(contact_id)
        view["score"] = score.total if score is not None and score.total is not None else 0
        view["band"] = score.band if score is not None else None
        view["owner"] = owners.get(contact_id)


def _views_and_links(
    conn: Connection, connector_id: str, contact_ids: Sequence[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """:func:`views` and the contacts' links to the connector, the scores and links in one query."""
    found = _contact_rows(conn, contact_ids)
    if not found:
        return {}, {}
    scores: dict[str, Any] = {}
    links: dict[str, dict[str, Any]] = {}
    for row in conn.execute(store.scores_and_links(conn.dialect.name, connector_id, list(found))):
        values = row._mapping
        scores[row.contact_id] = row
        if values["link_local_id"] is not None:
            link = {key[5:]: value for key, value in values.items() if key.startswith("link_")}
            links[f"{CONTACT}:{row.contact_id}"] = link
    _complete(conn, found, scores)
    return found, links


def _links(
    conn: Connection, connector_id: str, kind: str, local_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    if not local_ids:
        return {}
    rows = conn.execute(queries.links_of(connector_id, kind, sorted(set(local_ids))))
    return {f"{kind}:{row.local_id}": dict(row._mapping) for row in rows}


def plan(
    conn: Connection,
    connector: Connector,
    vendor: Vendor,
    contact_ids: Sequence[str],
    *,
    owners: Mapping[str, str] | None,
    region: str | None,
) -> Plan:
    """Read everything the batch needs and decide each record's write (no vendor call). ``owners``: the
    vendor's owners by email, or None when they were not read; then a contact whose mapping needs one
    sets :attr:`Plan.owners_wanted` and the contacts are decided again by :func:`with_owners`."""
    found, links = _views_and_links(conn, connector.id, contact_ids)
    result = Plan(found, links)
    result.missing = set(contact_ids) - set(found)
    objects = connector.objects & vendor.kinds
    if COMPANY in objects:
        _plan_companies(conn, connector, vendor, result)
    _plan_contacts(connector, result, owners, region)
    if DEAL in objects:
        _plan_deals(conn, connector, vendor, result)
    if ACTIVITY in objects:
        _plan_activities(conn, connector, vendor, result)
    return result


def _remote(link: dict[str, Any] | None) -> str | None:
    return str(link["remote_id"]) if link else None


def _owner_lookup(result: Plan, owners: Mapping[str, str] | None) -> Callable[[str], str | None]:
    if owners is not None:
        return lambda email: owners.get(email.lower())

    def wanted(email: str) -> None:
        result.owners_wanted = True

    return wanted


def with_owners(connector: Connector, result: Plan, owners: Mapping[str, str], region: str | None) -> None:
    """Decide the contacts' writes again now that the vendor's owners are read (see :func:`plan`)."""
    result.owners_wanted = False
    result.unchanged.clear()
    result.skipped.clear()
    _plan_contacts(connector, result, owners, region)


def _plan_contacts(
    connector: Connector, result: Plan, owners: Mapping[str, str] | None, region: str | None
) -> None:
    records: list[Record] = []
    lookup = _owner_lookup(result, owners)
    for contact_id, view in result.views.items():
        properties = mapping.render(connector.mapping, view, region=region, owners=lookup)
        link = result.link(CONTACT, contact_id)
        if link is None and not view["email"]:
            result.skipped.add(contact_id)  # an anonymous visitor: written once it has an address
            continue
        company = result.remote(COMPANY, view["company_id"])
        if link is not None and all(link["fields"].get(k) == v for k, v in properties.items()):
            result.unchanged.add(contact_id)
            continue
        associations = {COMPANY: [company]} if company and link is None else {}
        records.append(Record(CONTACT, contact_id, properties, _remote(link), view["email"], associations))
    result.writes[CONTACT] = records


def _plan_companies(conn: Connection, connector: Connector, vendor: Vendor, result: Plan) -> None:
    companies = {v["company"]["id"]: v["company"] for v in result.views.values() if v["company"]}
    result.links.update(_links(conn, connector.id, COMPANY, list(companies)))
    records = []
    for company_id, row in companies.items():
        properties = vendor.properties(COMPANY, row)
        link = result.link(COMPANY, company_id)
        if link is not None and link["fields"] == properties:
            continue
        records.append(Record(COMPANY, company_id, properties, _remote(link)))
    result.writes[COMPANY] = records


def _plan_deals(conn: Connection, connector: Connector, vendor: Vendor, result: Plan) -> None:
    deals = list(crm.export_deals(conn, list(result.views)))
    result.links.update(_links(conn, connector.id, DEAL, [row["id"] for row in deals]))
    records = []
    for row in deals:
        properties = vendor.properties(DEAL, row)
        link = result.link(DEAL, row["id"])
        if link is not None and link["fields"] == properties:
            continue
        result.rows[f"{DEAL}:{row['id']}"] = row
        records.append(Record(DEAL, row["id"], properties, _remote(link)))
    result.writes[DEAL] = records


def _plan_activities(conn: Connection, connector: Connector, vendor: Vendor, result: Plan) -> None:
    logged = crm.export(conn, list(result.views))["crm_activities"]
    ids = [str(row["id"]) for row in logged]
    result.links.update(_links(conn, connector.id, ACTIVITY, ids))
    records = []
    for row in logged:
        local_id = str(row["id"])
        if result.link(ACTIVITY, local_id) is None:
            result.rows[f"{ACTIVITY}:{local_id}"] = row
            records.append(Record(ACTIVITY, local_id, vendor.properties(ACTIVITY, row)))
    result.writes[ACTIVITY] = records


def associate(result: Plan, kind: str, records: Sequence[Record]) -> list[Record]:
    """Deals and activities with their contact's (and company's) remote ids, known once the contacts
    are written; a record whose contact has no remote record yet waits for the next sync."""
    ready = []
    for record in records:
        row = result.rows.get(f"{kind}:{record.local_id}") or {}
        contact = result.remote(CONTACT, row.get("contact_id"))
        if contact is None:
            continue
        links: dict[str, list[str]] = {CONTACT: [contact]}
        company = result.remote(COMPANY, row.get("company_id"))
        if company and kind == DEAL:
            links[COMPANY] = [company]
        ready.append(Record(record.kind, record.local_id, record.properties, record.remote_id, None, links))
    return ready


def with_company(result: Plan, records: Sequence[Record]) -> list[Record]:
    """A contact's first write with its company's remote id when the company was only written in this
    batch (planned before it had one): a Salesforce Contact's Account, a HubSpot association."""
    ready = []
    for record in records:
        company_id = (result.views.get(record.local_id) or {}).get("company_id")
        company = result.remote(COMPANY, company_id)
        if company and record.remote_id is None and COMPANY not in record.associations:
            links = {**record.associations, COMPANY: [company]}
            record = Record(record.kind, record.local_id, record.properties, None, record.match, links)
        ready.append(record)
    return ready


def refresh(result: Plan, fresh: Mapping[str, dict[str, Any]]) -> None:
    """Fold in the companies written by the batches sent just before this one in the same pass: a batch
    is read while the previous one is at the vendor (before its links are saved), so a company two
    batches share would otherwise be created twice. ``fresh`` holds ``company:<id>`` → the link
    (``remote_id``, ``fields`` written). A company written with these very fields is not written again;
    one written with others is updated by its new remote id."""
    if not fresh:
        return
    result.links.update(fresh)
    companies = []
    for record in result.writes.get(COMPANY) or []:
        link = fresh.get(f"{COMPANY}:{record.local_id}")
        if link is None:
            companies.append(record)
        elif link["fields"] != record.properties:
            companies.append(Record(COMPANY, record.local_id, record.properties, str(link["remote_id"])))
    if COMPANY in result.writes:
        result.writes[COMPANY] = companies
