"""GDPR: erasure (right to be forgotten) and export (right of access)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import import_jobs, queries, suppression, tags
from leadflow.contacts.models import (
    contact_identities,
    contact_merges,
    contact_tags,
    contacts,
    erasure_suppressions,
    erasures,
    touchpoints,
)
from leadflow.contacts.schemas import Erasure
from leadflow.contacts.writes import profile_lock
from leadflow.events import service as events
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import insert_ignore
from leadflow.kernel.facts import ContactsErased
from leadflow.kernel.ids import new_id
from leadflow.messaging import service as messaging
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments
from leadflow.webhooks import service as webhooks


def _count(conn: Connection, table: sa.Table, column: sa.Column[Any], value: str) -> int:
    return int(
        conn.execute(sa.select(sa.func.count()).select_from(table).where(column == value)).scalar_one()
    )


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
            "touchpoints": _count(conn, touchpoints, touchpoints.c.contact_id, live),
            "identities": len(ids),
            "merged_contacts": len(all_ids) - 1,
        }
        erased = ContactsErased(
            tuple(all_ids), user_ids, anon_ids, ctx.clock.now(), (email,) if email else ()
        )
        ctx.bus.publish(conn, erased)
        conn.execute(touchpoints.delete().where(touchpoints.c.contact_id == live))
        conn.execute(contact_tags.delete().where(contact_tags.c.contact_id == live))
        conn.execute(contact_identities.delete().where(contact_identities.c.contact_id == live))
        conn.execute(contact_merges.delete().where(contact_merges.c.survivor_id == live))
        conn.execute(contacts.delete().where(contacts.c.id == live))
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
        conn.execute(erasures.insert(), record)
        digests = set(suppression.event_digests(secret, user_ids, anon_ids))
        if digests:
            conn.execute(
                insert_ignore(conn, erasure_suppressions, ["digest"]),
                [{"digest": d, "erasure_id": record["id"]} for d in sorted(digests)],
            )
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


def export(ctx: AppContext, contact_id: str) -> dict[str, Any]:
    """Everything leadflow holds about a person, as one JSON document: the profile (with its consent),
    identities, company, events, touchpoints, tags, segment memberships, scores, journey runs and
    their steps, messages, suppressions of their addresses, topic preferences, webhook deliveries
    about them, CSV import rows about them that were rejected or merged, and the audit entries about
    them."""
    secret = ctx.secret_key  # read outside the transaction
    with ctx.db.read() as conn:
        live = queries.get(conn, contact_id).id
        row = queries.full_row(conn, live)
        merged = queries.merged_ids(conn, live)
        all_ids = [live, *merged]
        company = queries.company(conn, row["company_id"]).model_dump() if row["company_id"] else None
        emails = [row["email"]] if row["email"] else []
        return {
            "contact": row,
            "consent": row["consent"],
            "identities": queries.identities(conn, live),
            "merged_contact_ids": merged,
            "company": company,
            "events": events.for_contacts(conn, [live], limit=None),
            "touchpoints": queries.touchpoints_of(conn, live),
            "tags": tags.of(conn, live),
            "segments": segments.memberships_of(conn, all_ids),
            **scoring.export(conn, all_ids),
            "journey_runs": journeys.export(conn, all_ids),
            **messaging.export(conn, secret, all_ids, emails),
            "webhook_deliveries": webhooks.export(conn, all_ids),
            "import_issues": import_jobs.export(
                conn, emails, [i["value"] for i in queries.identities(conn, live) if i["kind"] == "user"]
            ),
            "audit": audit.entries(conn, entity_type="contact", entity_ids=all_ids, limit=10_000),
        }
