"""GDPR access: everything leadflow holds about a person, gathered from every domain.

(Erasure is :func:`leadflow.contacts.service.erase`: the contacts domain deletes the profile and
publishes ``ContactsErased``, which every other domain handles in the same transaction.)
"""

from __future__ import annotations

from typing import Any

from leadflow.audit import service as audit
from leadflow.capture import service as capture
from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging
from leadflow.scheduling import service as scheduling
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments
from leadflow.webhooks import service as webhooks


def export(ctx: AppContext, contact_id: str) -> dict[str, Any]:
    """Everything leadflow holds about a person, as one JSON document: the profile (with its consent),
    identities, company, events, touchpoints, tags, segment memberships, scores, journey runs and
    their steps, messages, suppressions of their addresses, topic preferences, webhook deliveries
    and incoming webhooks about them, their form submissions (consent records), CSV import rows about
    them that were rejected or merged, their CRM lead record and activities, and the audit entries
    about them. A merged id answers as its survivor, with what is held under every id merged into it."""
    secret = ctx.secret_key  # read outside the transaction
    with ctx.db.read() as conn:
        person = contacts.held(conn, contact_id)
        ids = person.contact_ids
        return {
            **person.profile,
            "events": events.for_contacts(conn, [person.contact_id], limit=None),
            "touchpoints": person.touchpoints,
            "tags": person.tags,
            "segments": segments.memberships_of(conn, ids),
            **scoring.export(conn, ids),
            "journey_runs": journeys.export(conn, ids),
            **messaging.export(conn, secret, ids, person.emails),
            "webhook_deliveries": webhooks.export(conn, ids),
            "inbound_webhooks": webhooks.export_inbound(conn, person.emails, _anonymous_ids(person)),
            "form_submissions": capture.export(conn, ids),
            "scheduling": scheduling.export(conn, ids),
            **crm.export(conn, ids),
            "crm_deals": crm.export_deals(conn, ids),
            "crm_lead_sla": crm.export_sla(conn, ids),
            "import_issues": person.import_issues,
            "audit": audit.entries(conn, entity_type="contact", entity_ids=ids, limit=10_000),
        }


def _anonymous_ids(person: contacts.Held) -> list[str]:
    return [i["value"] for i in person.profile.get("identities", []) if i.get("kind") == "anon"]
