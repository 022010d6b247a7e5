"""Pulling remote changes of people back into leadflow, with a conflict policy per field.

The vendor lists the people changed since the connector's cursor (HubSpot: the search API on
``lastmodifieddate``), oldest first. Only people leadflow wrote (a link holds their remote id) are
considered, and only the mapping's *pullable* fields (:attr:`leadflow.connectors.mapping.Entry.pullable`).

For each such field, the remote value is compared with what the link last saw (the value leadflow
wrote, or read before): equal means nothing happened remotely — in particular the echo of leadflow's
own write — and nothing is done. A value that differs is a remote change, settled by the field's
policy (``conflict``):

- ``remote`` — the remote value is applied to the contact;
- ``leadflow`` — leadflow's value stays, and the contact is queued so it is written back;
- ``newest`` — whichever changed last wins: the remote one when its modification time is later than
  the contact's last update, else leadflow's.

Whatever the policy, an unsubscribe read back (a mapped ``subscription_status`` that the vendor says is
``unsubscribed``) is applied: an unsubscribe on either side reaches the other.

Remote values are applied as the connector (audit actor ``connector:<id>``) inside
:func:`leadflow.connectors.outbox.pulling`, so the change is not queued back to the same vendor (no
echo) while other connectors still receive it. Every field read is audited (``pull``, ``applied`` or
``kept``); the cursor moves to the newest modification time read.
"""

from __future__ import annotations

from typing import Any

from leadflow.connectors import mapping, outbox, queries
from leadflow.connectors.config import Connector
from leadflow.connectors.vendor import CONTACT, Change, Vendor
from leadflow.contacts import service as contacts
from leadflow.kernel import jsonutil
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError

PAGE = 100
UNSUBSCRIBED = "unsubscribed"


def _audit(
    connector: Connector,
    contact_id: str,
    change: Change,
    field: str,
    old: Any,
    new: Any,
    outcome: str,
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "connector_id": connector.id,
        "kind": CONTACT,
        "local_id": contact_id,
        "contact_id": contact_id,
        "remote_id": change.remote_id,
        "field": field,
        "old_value": None if old is None else jsonutil.dumps(old),
        "new_value": None if new is None else jsonutil.dumps(new),
        "direction": "pull",
        "outcome": outcome,
        "detail": detail,
        "lag_ms": None,
        "at": change.modified_at,
    }


def pull(ctx: AppContext, connector: Connector, vendor: Vendor) -> int:
    """One page of remote changes; returns how many fields were applied to leadflow."""
    pullable = [entry for entry in connector.mapping if entry.pullable]
    if not pullable:
        return 0
    changes = vendor.changes(connector.pulled_until, [entry.to for entry in pullable], PAGE)
    if not changes:
        return 0
    with ctx.db.read() as conn:
        links = {
            row.remote_id: dict(row._mapping)
            for row in conn.execute(
                queries.links_by_remote(connector.id, CONTACT, [c.remote_id for c in changes])
            )
        }
        updated = {
            row.id: row.updated_at
            for row in contacts.rows_of(
                conn, ("id", "updated_at"), [link["local_id"] for link in links.values()]
            )
        }
    applied = 0
    for change in changes:
        link = links.get(change.remote_id)
        if link is None or link["local_id"] not in updated:
            continue
        applied += _apply(ctx, connector, change, link, pullable, updated[link["local_id"]])
    cursor = max(change.modified_at for change in changes)
    with ctx.db.write() as conn:
        conn.execute(queries.update_connector(connector.id, {"pulled_until": cursor}))
    return applied


def _apply(
    ctx: AppContext,
    connector: Connector,
    change: Change,
    link: dict[str, Any],
    pullable: list[mapping.Entry],
    local_updated: Any,
) -> int:
    contact_id = link["local_id"]
    known = dict(link["fields"] or {})
    seen = dict(known)
    fields: dict[str, Any] = {}
    traits: dict[str, Any] = {}
    audit: list[dict[str, Any]] = []
    push_back = False
    region = ctx.settings.default_phone_region
    for entry in pullable:
        if entry.to not in change.properties:
            continue
        remote = change.properties[entry.to]
        if remote == known.get(entry.to) or (remote in (None, "") and known.get(entry.to) is None):
            continue  # nothing changed remotely (the echo of leadflow's own write)
        seen[entry.to] = remote
        policy = connector.policy(entry.to)
        remote_wins = policy == "remote" or (policy == "newest" and change.modified_at > local_updated)
        back = mapping.reverse(entry, remote, region)
        if back is not None and back == ("subscription_status", UNSUBSCRIBED):
            remote_wins = True  # an unsubscribe at the vendor always reaches leadflow, whatever the policy
        back = back if remote_wins else None
        if back is None:
            push_back = True
            audit.append(
                _audit(connector, contact_id, change, entry.to, known.get(entry.to), remote, "kept", policy)
            )
            continue
        path, value = back
        if path.startswith("traits."):
            traits[path.removeprefix("traits.")] = value
        else:
            fields[path] = value
        audit.append(
            _audit(connector, contact_id, change, entry.to, known.get(entry.to), remote, "applied", policy)
        )
    if not audit:
        return 0
    if fields or traits:
        try:
            with outbox.pulling(connector.id):
                patch = contacts.ContactPatch(**fields, **({"traits": traits} if traits else {}))
                contacts.patch(ctx, contact_id, patch, actor=f"connector:{connector.id}")
        except LeadflowError as exc:
            for row in audit:
                if row["outcome"] == "applied":
                    row["outcome"], row["detail"] = "failed", str(exc)[:500]
            fields, traits = {}, {}
    with ctx.db.write() as conn:
        conn.execute(
            queries.save_links(
                conn.dialect.name,
                [
                    {
                        **link,
                        "fields": seen,
                        "remote_modified_at": change.modified_at,
                        "synced_at": ctx.clock.now(),
                    }
                ],
            )
        )
        conn.execute(queries.INSERT_AUDIT, audit)
        if push_back:
            outbox.enqueue_many(
                conn,
                ctx,
                [outbox.row(connector.id, CONTACT, contact_id, ctx.clock.now(), contact_id=contact_id)],
            )
    return len(fields) + len(traits)
