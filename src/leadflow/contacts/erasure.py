"""GDPR, the contacts side: erasing a person (right to be forgotten) and what contacts holds about them
for an export (right of access). The export across every domain is :mod:`leadflow.privacy.service`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import import_jobs, queries, store, suppression, tags
from leadflow.contacts.schemas import Erasure
from leadflow.contacts.writes import profile_lock
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsErased
from leadflow.kernel.ids import new_id


def erase(ctx: AppContext, contact_id: str, *, actor: str) -> Erasure:
    """Erase a person: the profile, their events and touchpoints, the personal data in audit entries,
    and through ``ContactsErased`` everything other domains hold about them (memberships, scores,
    journey runs, messages, webhook deliveries, preferences, suppressions): :mod:`leadflow.privacy`
    lists what happens to every column of every table.

    What remains is an erasure record without personal data (ids, time, who asked, how many rows
    went) and keyed digests of their user / anonymous ids, so that events still in flight from their
    devices are dropped instead of rebuilding the profile. A digest already kept (the same user id
    erased before, re-created since) is kept once: erasing such a person again works.
    """
    secret = ctx.secret_key  # read before the transaction: the handlers use it too
    with ctx.db.write() as conn:
        profile_lock(conn)
        live = queries.get(conn, contact_id).id
        email = queries.full_row(conn, live)["email"]
        all_ids = [live, *queries.merged_ids(conn, live)]
        ids = queries.identities(conn, live)
        user_ids = tuple(i["value"] for i in ids if i["kind"] == "user")
        anon_ids = tuple(i["value"] for i in ids if i["kind"] == "anon")
        summary = {
            "events": events.count_for_contacts(conn, [live]),
            "touchpoints": queries.touchpoint_count(conn, live),
            "identities": len(ids),
            "merged_contacts": len(all_ids) - 1,
        }
        erased = ContactsErased(
            tuple(all_ids), user_ids, anon_ids, ctx.clock.now(), (email,) if email else ()
        )
        ctx.bus.publish(conn, erased)
        store.delete_profile(conn, live)
        redacted = audit.redact(conn, "contact", all_ids)
        redacted += audit.redact_mentioning(conn, "suppression", "email", [email.lower()] if email else [])
        summary["audit_entries_redacted"] = redacted
        record: dict[str, Any] = {
            "id": new_id(),
            "contact_id": live,
            "erased_at": ctx.clock.now(),
            "actor": actor,
            "summary": summary,
        }
        store.record_erasure(conn, record, suppression.event_digests(secret, user_ids, anon_ids))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="contact.erased",
            entity_type="erasure",
            entity_id=record["id"],
            data={"contact_id": live, "summary": summary},
        )
    return Erasure.model_validate(record)


@dataclass(frozen=True)
class Held:
    """What the contacts domain holds about a person, for an export; ``contact_ids``: the live id and
    every id merged into it, ``emails``: their address (if any), by which other domains find them too."""

    contact_id: str
    contact_ids: list[str]
    emails: list[str]
    profile: dict[str, Any]
    touchpoints: list[dict[str, Any]]
    tags: list[str]
    import_issues: list[dict[str, Any]]


def held(conn: Connection, contact_id: str) -> Held:
    """The profile (with consent, identities, merged ids and company), touchpoints, tags and the CSV
    import rows about the person that were rejected or merged."""
    live = queries.get(conn, contact_id).id
    row = queries.full_row(conn, live)
    merged = queries.merged_ids(conn, live)
    identities = queries.identities(conn, live)
    company = queries.company(conn, row["company_id"]).model_dump() if row["company_id"] else None
    emails = [row["email"]] if row["email"] else []
    user_ids = [i["value"] for i in identities if i["kind"] == "user"]
    return Held(
        contact_id=live,
        contact_ids=[live, *merged],
        emails=emails,
        profile={
            "contact": row,
            "consent": row["consent"],
            "identities": identities,
            "merged_contact_ids": merged,
            "company": company,
        },
        touchpoints=queries.touchpoints_of(conn, live),
        tags=tags.of(conn, live),
        import_issues=import_jobs.export(conn, emails, user_ids),
    )
