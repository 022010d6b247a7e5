"""Where personal data lives, and what a GDPR erasure does with each place: the one list.

Every text and JSON column of every table is named here with its treatment; a test
(``tests/unit/test_privacy.py``) fails while a column of ``leadflow.tables.metadata`` is missing, so a
table added later cannot be forgotten. Another (``tests/integration/test_erasure_everywhere.py``) erases
a person who went through every part of leadflow and scans every text and JSON value of every table.

Treatments:

- ``DELETED``: the row goes with the person (it is found by their contact id, user or anonymous id).
- ``REDACTED``: the row stays for the statistics or the history of others (a message's status and
  times count in a journey's or broadcast's results), the value is cleared on the person's rows.
- ``DIGEST``: the value is replaced by a keyed digest (HMAC-SHA256 with the installation's secret), so
  that an erased address is still never mailed, or a late event of an erased id still dropped, without
  the plaintext being kept.
- ``NOT_PERSONAL``: random ids, states, names of things, configuration written by staff, staff
  identities (API key names, owners' addresses), digests. Staff-authored text (a template, a segment
  rule, a journey definition) could name a person only if someone typed one in; that is configuration,
  outside erasure.

Who does it: each domain's ``on_contacts_erased`` handler (wired in :mod:`leadflow.runtime.context`),
run in the erasure's transaction by :func:`leadflow.contacts.erasure.erase`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Treatment(StrEnum):
    DELETED = "deleted"
    REDACTED = "redacted"
    DIGEST = "digest"
    NOT_PERSONAL = "not_personal"


DELETED, REDACTED, DIGEST, NOT_PERSONAL = Treatment

_ID = NOT_PERSONAL  # a random id (ULID) or a key chosen by staff

REGISTRY: Final[dict[str, dict[str, Treatment]]] = {
    # --- contacts: the profile and everything keyed to it goes with the person -------------------
    "contacts": {
        "id": DELETED,
        "user_id": DELETED,
        "email": DELETED,
        "phone": DELETED,
        "first_name": DELETED,
        "last_name": DELETED,
        "traits": DELETED,
        "company_id": DELETED,
        "lifecycle_stage": DELETED,
        "owner_id": DELETED,
        "timezone": DELETED,
        "subscription_status": DELETED,
        "consent": DELETED,
        "search_text": DELETED,  # generated from the email, user id and names
    },
    "contact_identities": {"kind": DELETED, "value": DELETED, "contact_id": DELETED},
    "contact_tags": {"contact_id": DELETED, "tag": DELETED},
    "contact_merges": {"merged_id": DELETED, "survivor_id": DELETED},
    "touchpoints": {
        "contact_id": DELETED,
        "source": DELETED,
        "medium": DELETED,
        "campaign": DELETED,
        "term": DELETED,
        "content": DELETED,
        "referrer": DELETED,
        "url": DELETED,
        "kind": DELETED,
        "journey": DELETED,
    },
    # A company is a business, shared by its people: it stays when one of them is erased.
    "companies": {
        "id": _ID,
        "group_id": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "domain": NOT_PERSONAL,
        "industry": NOT_PERSONAL,
        "traits": NOT_PERSONAL,
    },
    # The erasure record: ids, who asked (an API key's actor), row counts; never who was erased.
    "erasures": {"id": _ID, "contact_id": _ID, "actor": NOT_PERSONAL, "summary": NOT_PERSONAL},
    "erasure_suppressions": {"digest": DIGEST, "erasure_id": _ID},
    # CSV imports through the API (leadflow.contacts.import_jobs). The file is kept only while the job
    # waits or runs; erasure empties the person's rows in it (matched by email) and deletes their
    # rejected rows and warnings (by email or user id). A rejected row whose email cell is blank or
    # unreadable cannot be tied to anyone: it goes when staff delete the job.
    "import_jobs": {
        "id": _ID,
        "status": NOT_PERSONAL,
        "filename": NOT_PERSONAL,  # named by staff
        "mapping": NOT_PERSONAL,  # CSV headers -> fields
        "list_id": _ID,
        "source": REDACTED,
        "error": NOT_PERSONAL,  # a file-level reason (a missing column, a deleted list)
        "actor": NOT_PERSONAL,
    },
    "import_issues": {
        "job_id": _ID,
        "kind": NOT_PERSONAL,
        "lines": NOT_PERSONAL,
        "code": NOT_PERSONAL,
        "message": DELETED,  # quotes the refused value
        "email": DELETED,
        "user_id": DELETED,
        "row_values": DELETED,
    },
    # --- events: the person's events go, also those still waiting with their user/anonymous ids ----
    "events": {
        "message_id": DELETED,
        "type": DELETED,
        "event": DELETED,
        "name": DELETED,
        "user_id": DELETED,
        "anonymous_id": DELETED,
        "group_id": DELETED,
        "previous_id": DELETED,
        "contact_id": DELETED,
        "properties": DELETED,
        "traits": DELETED,
        "context": DELETED,
        "integrations": DELETED,
        "source": DELETED,
        "error": DELETED,
    },
    # --- segments and scoring: the person's memberships and scores go ----------------------------
    "segments": {
        "id": _ID,
        "key": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "description": NOT_PERSONAL,
        "kind": NOT_PERSONAL,
        "rules": NOT_PERSONAL,
        "dependencies": NOT_PERSONAL,
    },
    "segment_members": {"segment_id": DELETED, "contact_id": DELETED},
    "scoring_rules": {
        "id": _ID,
        "name": NOT_PERSONAL,
        "kind": NOT_PERSONAL,
        "event": NOT_PERSONAL,
        "definition": NOT_PERSONAL,
    },
    "score_counters": {"contact_id": DELETED, "rule_id": DELETED},
    "score_points": {"contact_id": DELETED, "rule_id": DELETED},
    "contact_scores": {"contact_id": DELETED, "band": DELETED},
    # --- journeys: runs and steps stay for the journey's metrics; runs end, waiting steps are
    # cancelled, what the person did or was (the entering event, step details, errors) is cleared ---
    "journeys": {
        "id": _ID,
        "key": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "description": NOT_PERSONAL,
        "status": NOT_PERSONAL,
        "definition": NOT_PERSONAL,
    },
    "journey_versions": {"journey_id": _ID, "definition": NOT_PERSONAL, "published_by": NOT_PERSONAL},
    "journey_runs": {
        "id": _ID,
        "journey_id": _ID,
        "contact_id": _ID,
        "status": NOT_PERSONAL,
        "entry_key": NOT_PERSONAL,  # "once", an event's row id, a cron tick, a year
        "active_key": NOT_PERSONAL,
        "step_id": NOT_PERSONAL,
        "variant": NOT_PERSONAL,
        "trigger": REDACTED,
        "exit_reason": NOT_PERSONAL,
        "error": REDACTED,
    },
    "journey_steps": {
        "run_id": _ID,
        "journey_id": _ID,
        "contact_id": _ID,
        "step_id": NOT_PERSONAL,
        "type": NOT_PERSONAL,
        "status": NOT_PERSONAL,
        "waiting_for": NOT_PERSONAL,  # an event name from the definition
        "branch": NOT_PERSONAL,
        "detail": REDACTED,
        "error": REDACTED,
    },
    # per split, path and day: counts only (an erased person's exposures stay counted, like a message's
    # send statistics)
    "journey_split_daily": {"journey_id": _ID, "step_id": NOT_PERSONAL, "branch": NOT_PERSONAL},
    # the journey funnel's per journey, day of entry (and step): counts only, like the split counters
    "journey_entry_daily": {"journey_id": _ID},
    "journey_reach_daily": {"journey_id": _ID, "step_id": NOT_PERSONAL},
    # --- messaging: a message keeps id, status and times (send statistics), loses whom and what;
    # waiting messages are suppressed; the outbox's .eml files of the person's messages are removed;
    # later news of them (a send under way, a bounce, an open, a click) writes nothing back ------------
    "email_layouts": {
        "id": _ID,
        "key": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "html": NOT_PERSONAL,
        "text": NOT_PERSONAL,
    },
    "email_templates": {
        "id": _ID,
        "key": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "kind": NOT_PERSONAL,
        "topic": NOT_PERSONAL,
        "layout": NOT_PERSONAL,
        "subject": NOT_PERSONAL,
        "html": NOT_PERSONAL,
        "text": NOT_PERSONAL,
        "mjml": NOT_PERSONAL,
    },
    "email_topics": {"key": NOT_PERSONAL, "name": NOT_PERSONAL, "description": NOT_PERSONAL},
    "messages": {
        "id": _ID,
        "key": NOT_PERSONAL,  # journey item / broadcast recipient ids
        "kind": NOT_PERSONAL,
        "contact_id": _ID,
        "to_address": REDACTED,
        "template_id": _ID,
        "topic": NOT_PERSONAL,
        "journey_id": _ID,
        "run_id": _ID,
        "step_id": NOT_PERSONAL,
        "broadcast_id": _ID,
        "status": NOT_PERSONAL,
        "context": REDACTED,
        "recipient": REDACTED,
        "subject": REDACTED,
        "error": REDACTED,  # becomes "contact erased", the mark later news is checked against
        "response": REDACTED,
    },
    # Unsubscribed, hard bounce, complaint: the address stays blocked, as a digest.
    "suppressions": {"email": DIGEST, "reason": NOT_PERSONAL, "detail": REDACTED, "message_id": _ID},
    "email_preferences": {"contact_id": DELETED, "topic": DELETED},
    "broadcasts": {
        "id": _ID,
        "name": NOT_PERSONAL,
        "segment_id": _ID,
        "template_id": _ID,
        "topic": NOT_PERSONAL,
        "status": NOT_PERSONAL,
        "created_by": NOT_PERSONAL,
    },
    # --- capture: form definitions are staff configuration; a submission (the consent record: what
    # the person agreed to, when, from which address) goes with the person
    "forms": {"id": _ID, "name": NOT_PERSONAL, "definition": NOT_PERSONAL, "created_by": NOT_PERSONAL},
    "form_submissions": {
        "id": _ID,
        "form_id": _ID,
        "contact_id": DELETED,
        "email": DELETED,
        "data": DELETED,
        "utm": DELETED,
        "page_url": DELETED,
        "referrer": DELETED,
        "ip": DELETED,
        "consent_text": DELETED,
        "status": DELETED,
    },
    # --- webhooks: a delivery keeps its id, status and times; waiting ones are cancelled -----------
    "webhook_deliveries": {
        "id": _ID,
        "key": NOT_PERSONAL,
        "url": NOT_PERSONAL,  # from the journey's definition
        "event": NOT_PERSONAL,
        "payload": REDACTED,
        "status": NOT_PERSONAL,
        "error": REDACTED,  # a receiver's answer may echo the payload; "contact erased" when cancelled
        "contact_id": _ID,
        "journey_id": _ID,
        "run_id": _ID,
        "endpoint_id": _ID,
        "replay_of": _ID,
        "request_headers": NOT_PERSONAL,  # our own headers: ids, times, signatures
        "response_headers": NOT_PERSONAL,  # a subset: content type, length, Retry-After, Location
        "response_body": REDACTED,  # a receiver's answer may echo the payload
    },
    # registered by staff: a receiver's address and its subscriptions
    "webhook_endpoints": {
        "id": _ID,
        "url": NOT_PERSONAL,
        "description": NOT_PERSONAL,
        "event_types": NOT_PERSONAL,
        "secret_salt": NOT_PERSONAL,
        "previous_salt": NOT_PERSONAL,
        "disabled_reason": NOT_PERSONAL,
    },
    "webhook_replay_tokens": {"source": NOT_PERSONAL, "token": NOT_PERSONAL, "body_digest": DIGEST},
    # incoming webhooks: a sender's configuration; a delivery about the person keeps its sender id (so a
    # late copy is still recognised as a duplicate), status and times, and loses its body and address
    "webhook_sources": {"name": NOT_PERSONAL, "kind": NOT_PERSONAL, "secret": NOT_PERSONAL},
    "inbound_webhooks": {
        "id": _ID,
        "source": NOT_PERSONAL,
        "kind": NOT_PERSONAL,
        "sender_id": NOT_PERSONAL,  # the sender's event id, or a digest of what identifies the event
        "type": NOT_PERSONAL,
        "body": REDACTED,
        "status": NOT_PERSONAL,
        "error": REDACTED,
        "email": REDACTED,
        "anonymous_id": REDACTED,
        "subject": REDACTED,  # the sender's id of the person (a Stripe customer id)
    },
    # --- crm: the business's users and teams are staff; a lead's record and every activity logged
    # about the person go with them
    "crm_teams": {"id": _ID, "name": NOT_PERSONAL, "lead_user_id": _ID},
    "crm_users": {
        "id": _ID,
        "name": NOT_PERSONAL,  # staff identities
        "email": NOT_PERSONAL,
        "role": NOT_PERSONAL,
        "team_id": _ID,
        "timezone": NOT_PERSONAL,
        "working_hours": NOT_PERSONAL,
    },
    "crm_leads": {
        "contact_id": DELETED,
        "status": DELETED,
        "reason": DELETED,
        "owner_id": DELETED,
        "source": DELETED,
    },
    "crm_routing_rules": {
        "id": _ID,
        "name": NOT_PERSONAL,
        "condition": NOT_PERSONAL,  # a rule on fields, no person's data
        "team_id": _ID,
        "user_id": _ID,
    },
    "crm_routing_counts": {"team_id": _ID, "user_id": _ID},
    "crm_config": {"id": NOT_PERSONAL, "fallback_owner_id": _ID},
    "crm_lead_sla": {"contact_id": DELETED, "owner_id": DELETED},
    # pipelines and stages are staff configuration; an erased person's deals stay as revenue numbers
    # (value, currency, stage, dates) without the person: the contact is detached and the free text
    # (title, reason) is replaced (leadflow.crm.deals.on_contacts_erased); a deal's stage history holds
    # no person's data
    "crm_pipelines": {"id": _ID, "name": NOT_PERSONAL, "rules": NOT_PERSONAL},
    "crm_stages": {"id": _ID, "pipeline_id": _ID, "name": NOT_PERSONAL, "kind": NOT_PERSONAL},
    # the pipeline stats' per-(stage, day) counters: counts and sums, no deal or person
    "crm_stage_days": {"stage_id": _ID, "pipeline_id": _ID},
    "crm_stage_deal_days": {"stage_id": _ID, "currency": NOT_PERSONAL, "pipeline_id": _ID},
    "crm_deals": {
        "id": _ID,
        "pipeline_id": _ID,
        "stage_id": _ID,
        "status": NOT_PERSONAL,
        "title": REDACTED,
        "currency": NOT_PERSONAL,
        "owner_id": _ID,  # a staff user
        "contact_id": REDACTED,
        "company_id": _ID,  # an organisation, not the person
        "reason": REDACTED,
    },
    "crm_deal_stages": {"deal_id": _ID, "stage_id": _ID},
    "crm_activities": {
        "contact_id": DELETED,
        "kind": DELETED,
        "subject": DELETED,
        "body": DELETED,
        "owner_id": DELETED,
        "created_by": DELETED,
    },
    # --- scheduling: consultants' profiles and feeds are staff configuration; bookings and requests
    # are the person's and go with them ----------------------------------------------------------------
    "scheduling_profiles": {
        "user_id": _ID,
        "services": NOT_PERSONAL,
        "availability": NOT_PERSONAL,
        "ics_url": NOT_PERSONAL,
        "ics_error": NOT_PERSONAL,
    },
    "scheduling_busy": {"user_id": _ID, "summary": NOT_PERSONAL},  # the consultant's own calendar
    "scheduling_bookings": {
        "id": _ID,
        "user_id": _ID,
        "contact_id": DELETED,
        "email": DELETED,
        "name": DELETED,
        "service": DELETED,
        "tz": DELETED,
        "status": DELETED,
        "source": DELETED,
        "external_id": DELETED,
        "notes": DELETED,
        "cancel_reason": DELETED,
    },
    "scheduling_requests": {
        "id": _ID,
        "contact_id": DELETED,
        "email": DELETED,
        "name": DELETED,
        "service": DELETED,
        "preferred": DELETED,
        "tz": DELETED,
        "notes": DELETED,
        "status": DELETED,
        "booking_id": DELETED,
    },
    # --- connectors: the person's links, waiting syncs, field audit and conflicts go; their erasure ----
    # is queued for every connected vendor (by the remote id only) and recorded without any value
    "connectors": {
        "id": _ID,
        "vendor": NOT_PERSONAL,
        "name": NOT_PERSONAL,
        "credentials": NOT_PERSONAL,  # sealed staff configuration
        "options": NOT_PERSONAL,  # the vendor's non-secret settings: staff configuration
        "host": NOT_PERSONAL,
        "mapping": NOT_PERSONAL,
        "triggers": NOT_PERSONAL,
        "objects": NOT_PERSONAL,
        "direction": NOT_PERSONAL,
        "conflict": NOT_PERSONAL,
        "limits": NOT_PERSONAL,
        "last_error": REDACTED,  # a vendor's answer may echo a value: cleared by any erasure
    },
    "connector_links": {
        "connector_id": _ID,
        "kind": NOT_PERSONAL,
        "local_id": DELETED,
        "remote_id": DELETED,
        "fields": DELETED,
    },
    "connector_outbox": {
        "connector_id": _ID,
        "kind": NOT_PERSONAL,
        "local_id": _ID,
        "contact_id": _ID,
        "payload": NOT_PERSONAL,  # an erasure's remote id
        "state": NOT_PERSONAL,
        "last_error": DELETED,
    },
    "connector_audit": {
        "connector_id": _ID,
        "kind": NOT_PERSONAL,
        "local_id": _ID,
        "contact_id": _ID,
        "remote_id": _ID,
        "field": NOT_PERSONAL,
        "old_value": DELETED,
        "new_value": DELETED,
        "direction": NOT_PERSONAL,
        "outcome": NOT_PERSONAL,
        "detail": DELETED,
    },
    "connector_conflicts": {
        "connector_id": _ID,
        "kind": NOT_PERSONAL,
        "local_id": _ID,
        "contact_id": _ID,
        "candidates": DELETED,
        "reason": DELETED,
    },
    # --- analytics: a person's stage entries (and first touch) go; the counts they were part of stay --
    "analytics_stage_entries": {
        "contact_id": DELETED,
        "stage": DELETED,
        "source": DELETED,
        "medium": DELETED,
        "campaign": DELETED,
    },
    # aggregate counts by names of things (stages, statuses, template/journey ids, campaign names)
    "analytics_daily": {"metric": NOT_PERSONAL, "dimension": NOT_PERSONAL, "key": NOT_PERSONAL},
    "analytics_hourly": {"metric": NOT_PERSONAL, "dimension": NOT_PERSONAL, "key": NOT_PERSONAL},
    "analytics_marks": {"name": NOT_PERSONAL},
    # threshold alerts and KPI digests: staff configuration, incidents about a connector, an endpoint
    # or the installation (never a contact), the staff users a digest or an alert goes to
    "alert_rules": {"id": _ID, "name": NOT_PERSONAL, "metric": NOT_PERSONAL, "user_ids": _ID},
    "alert_incidents": {"id": _ID, "rule_id": _ID, "subject": NOT_PERSONAL, "open_key": NOT_PERSONAL},
    "report_digests": {
        "id": _ID,
        "name": NOT_PERSONAL,
        "user_ids": _ID,
        "cron": NOT_PERSONAL,
        "timezone": NOT_PERSONAL,
    },
    "report_digest_sends": {"digest_id": _ID},
    # --- audit: entries about the person keep who did what when, lose their data -------------------
    "audit_log": {
        "actor": NOT_PERSONAL,
        "action": NOT_PERSONAL,
        "entity_type": NOT_PERSONAL,
        "entity_id": _ID,
        "data": REDACTED,
    },
    # --- staff and installation ------------------------------------------------------------------
    "api_keys": {
        "id": _ID,
        "name": NOT_PERSONAL,
        "prefix": NOT_PERSONAL,
        "key_hash": NOT_PERSONAL,
        "scopes": NOT_PERSONAL,
        "created_by": NOT_PERSONAL,
    },
    # the console: staff passwords (argon2id hashes) and sessions (a token's digest, a browser's name)
    "web_credentials": {"user_id": _ID, "password_hash": NOT_PERSONAL},
    "web_sessions": {"id_hash": NOT_PERSONAL, "user_id": _ID, "user_agent": NOT_PERSONAL},
    "config_entries": {"key": NOT_PERSONAL, "value": NOT_PERSONAL},
    "instance_values": {"key": NOT_PERSONAL, "value": NOT_PERSONAL},
}


def personal_columns(table: str) -> dict[str, Treatment]:
    """The columns of ``table`` that can hold personal data, with their treatment."""
    return {name: how for name, how in REGISTRY.get(table, {}).items() if how != NOT_PERSONAL}
