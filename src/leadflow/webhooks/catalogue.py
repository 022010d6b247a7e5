"""The event catalogue of outgoing webhooks: every type an endpoint can subscribe to, with its version and
the JSON schema of its ``data``.

A delivery's body is ``{"type", "timestamp", "data"}`` (Standard Webhooks); ``data`` always carries
``contact`` (``id``, ``email``, ``user_id``, ``first_name``, ``last_name``, ``lifecycle_stage``; null
fields when unknown; the profile as it is when the pipeline applies the event) and the fields the type
documents below (more may be added within a version; a field is never removed or changed without a new
version).

Where the events come from (the fan-out, :mod:`leadflow.webhooks.fanout`, reads every batch the
pipeline applies, ``ContactsTouched``):

- ``contact.created`` / ``contact.updated``: a profile the batch created / whose fields changed (the
  changed fields in ``changed``; ``last_seen_at`` / ``updated_at`` alone are not a change);
- internal events: ``leadflow.segment_entered`` / ``_exited`` → ``segment.entered`` / ``.exited``,
  ``leadflow.stage_changed`` → ``stage.changed``, ``leadflow.score_band_changed`` →
  ``score.band_changed``, ``leadflow.email_<sent|opened|clicked|bounced|unsubscribed>`` →
  ``email.<status>``;
- every other type (``lead.captured``, ``lead.status_updated``, ``assessment.completed``,
  ``consultation.requested``, ``consultation.scheduled``, ``deal.created``, ``deal.stage_changed``,
  ``form.submitted``, ``lead.sla_breached``, ``lead.sla_escalated``): a ``track`` event whose
  ``event`` name *is* the type (e.g. the CRM emits ``track`` ``deal.created`` through the pipeline);
  its ``properties`` become ``data`` beside ``contact``. The aliases in :data:`ALIASES` map a few
  names other parts already use.

``alert.opened`` / ``alert.resolved`` are analytics' threshold alerts (about no contact: ``contact`` is
null), queued by :func:`leadflow.webhooks.notices.notify`, once per incident each.

``webhook.test`` is sent only by ``POST /api/v1/webhooks/endpoints/{id}/test``, to that endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ANY = "*"
TEST = "webhook.test"

_STRING: dict[str, Any] = {"type": "string"}
_NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
CONTACT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": _STRING,
        "email": _NULLABLE_STRING,
        "user_id": _NULLABLE_STRING,
        "first_name": _NULLABLE_STRING,
        "last_name": _NULLABLE_STRING,
        "lifecycle_stage": _NULLABLE_STRING,
    },
}


@dataclass(frozen=True)
class EventType:
    """One catalogue entry: ``name``, ``version``, a description and the fields of ``data`` besides
    ``contact`` (name → JSON schema), of which ``required`` are always there."""

    name: str
    version: int
    description: str
    fields: dict[str, dict[str, Any]]
    required: tuple[str, ...] = ()
    about_contact: bool = True  # ``webhook.test`` is about no one: its ``contact`` is null

    def schema(self) -> dict[str, Any]:
        """The JSON schema (draft 2020-12) of this type's ``data``."""
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"urn:leadflow:webhooks:{self.name}:v{self.version}",
            "title": self.name,
            "type": "object",
            "required": ["contact", *self.required],
            "properties": {
                "contact": CONTACT_SCHEMA if self.about_contact else {"type": "null"},
                **self.fields,
            },
            "additionalProperties": True,
        }


def _t(name: str, description: str, required: tuple[str, ...] = (), /, **fields: dict[str, Any]) -> EventType:
    return EventType(name, 1, description, dict(fields), required)


_NUMBER: dict[str, Any] = {"type": "number"}
_SEGMENT: dict[str, dict[str, Any]] = {"segment_id": _STRING, "segment_name": _NULLABLE_STRING}
_EMAIL: dict[str, dict[str, Any]] = {
    "message_id": _STRING,
    "template_id": _NULLABLE_STRING,
    "journey_id": _NULLABLE_STRING,
    "broadcast_id": _NULLABLE_STRING,
    "kind": _NULLABLE_STRING,
}
_CHANGE: dict[str, dict[str, Any]] = {"from": _NULLABLE_STRING, "to": _STRING}
_DEAL: dict[str, dict[str, Any]] = {
    "deal_id": _STRING,
    "pipeline_id": _NULLABLE_STRING,
    "value": _NUMBER,
    "currency": _NULLABLE_STRING,
}

_ALERT: dict[str, dict[str, Any]] = {
    "incident_id": _STRING,
    "rule_id": _STRING,
    "rule_name": _STRING,
    "metric": _STRING,
    "subject": _STRING,
    "value": {"type": ["number", "null"]},
    "threshold": _NUMBER,
    "opened_at": _STRING,
}
#: leadflow's own notices (:mod:`leadflow.webhooks.notices`), never published from a ``track`` event
NOTICES = frozenset({"alert.opened", "alert.resolved"})

TYPES: tuple[EventType, ...] = (
    _t("contact.created", "A new profile.", changed={"type": "array", "items": _STRING}),
    _t(
        "contact.updated",
        "Fields of a profile changed.",
        ("changed",),
        changed={
            "type": "array",
            "items": _STRING,
            "description": "field names, traits.<key>; * when another profile was merged into it",
        },
    ),
    _t("lead.captured", "A lead arrived from a source (form, chat, download, ads).", source=_STRING),
    _t("lead.status_updated", "A lead's sales status changed.", **_CHANGE, reason=_NULLABLE_STRING),
    _t(
        "assessment.completed",
        "An assessment was completed.",
        assessment_type=_STRING,
        persona=_NULLABLE_STRING,
        readiness_score=_NUMBER,
        recommended_service=_NULLABLE_STRING,
    ),
    _t(
        "consultation.requested",
        "A consultation was requested: by the capture flow (topic, message, preferred_contact) or by a "
        "booking request none of whose preferred times was free (request_id, service, preferred_times).",
        topic=_NULLABLE_STRING,
        message=_NULLABLE_STRING,
        preferred_contact=_NULLABLE_STRING,
        request_id=_STRING,
        service=_STRING,
        preferred_times={"type": "array", "items": _STRING},
    ),
    _t(
        "consultation.scheduled",
        "A consultation was booked (or moved: rescheduled is true); times in ISO 8601 with their offset.",
        ("booking_id", "start_time", "end_time"),
        booking_id=_STRING,
        consultant_id=_NULLABLE_STRING,
        service=_STRING,
        start_time=_STRING,
        end_time=_STRING,
        email=_NULLABLE_STRING,
        rescheduled={"type": "boolean"},
        source=_NULLABLE_STRING,
    ),
    _t("email.sent", "An email was handed to the transport.", ("message_id",), **_EMAIL),
    _t("email.opened", "An email was opened.", ("message_id",), **_EMAIL),
    _t("email.clicked", "A link in an email was clicked.", ("message_id",), **_EMAIL, url=_STRING),
    _t("email.bounced", "An email bounced.", ("message_id",), **_EMAIL, reason=_NULLABLE_STRING),
    _t("email.unsubscribed", "The contact unsubscribed.", **_EMAIL),
    _t("segment.entered", "The contact entered a segment.", ("segment_id",), **_SEGMENT),
    _t("segment.exited", "The contact left a segment.", ("segment_id",), **_SEGMENT),
    _t("stage.changed", "The lifecycle stage moved forward.", ("to",), **_CHANGE),
    _t("score.band_changed", "The score crossed into another band.", ("to",), **_CHANGE, score=_NUMBER),
    _t("deal.created", "A deal was opened for the contact.", ("deal_id",), **_DEAL, stage=_STRING),
    _t("deal.stage_changed", "A deal moved to another stage.", ("deal_id",), **_DEAL, **_CHANGE),
    _t("form.submitted", "A hosted form was submitted.", form_id=_STRING, source=_NULLABLE_STRING),
    _t(
        "lead.sla_breached",
        "A qualified lead had no first response by its due time; its owner was alerted.",
        ("owner_id",),
        owner_id=_STRING,
        due_at=_STRING,
    ),
    _t(
        "lead.sla_escalated",
        "A lead still unanswered after the alert was escalated to the owner's team lead.",
        ("owner_id",),
        owner_id=_STRING,
        team_lead_id=_NULLABLE_STRING,
    ),
    EventType(
        "alert.opened",
        1,
        "A threshold alert rule's condition started (an incident opened); sent once per incident.",
        _ALERT,
        ("incident_id", "rule_id", "metric", "value", "threshold"),
        about_contact=False,
    ),
    EventType(
        "alert.resolved",
        1,
        "The condition of an open incident ended (`reason` 'condition ended'), or its rule was deleted"
        " ('rule deleted'); sent once, when it resolves.",
        {**_ALERT, "resolved_at": _STRING, "reason": _STRING},
        ("incident_id", "rule_id", "metric", "threshold", "resolved_at"),
        about_contact=False,
    ),
    EventType(
        TEST,
        1,
        "Sent on demand to check an endpoint.",
        {"message": _STRING, "endpoint_id": _STRING},
        ("message", "endpoint_id"),
        about_contact=False,
    ),
)
BY_NAME: dict[str, EventType] = {entry.name: entry for entry in TYPES}
#: the types an endpoint may subscribe to (``webhook.test`` goes only where it is asked for)
SUBSCRIBABLE = frozenset(BY_NAME) - {TEST}

#: internal event names → catalogue types
INTERNAL: dict[str, str] = {
    "leadflow.segment_entered": "segment.entered",
    "leadflow.segment_exited": "segment.exited",
    "leadflow.stage_changed": "stage.changed",
    "leadflow.score_band_changed": "score.band_changed",
    "leadflow.email_sent": "email.sent",
    "leadflow.email_opened": "email.opened",
    "leadflow.email_clicked": "email.clicked",
    "leadflow.email_bounced": "email.bounced",
    "leadflow.email_unsubscribed": "email.unsubscribed",
}
#: names other parts of leadflow already emit for a catalogue type
ALIASES: dict[str, str] = {
    "leadflow.lead_status_changed": "lead.status_updated",
    "lead.status_changed": "lead.status_updated",
    "consultation_scheduled": "consultation.scheduled",
    "consultation_requested": "consultation.requested",
    "assessment_completed": "assessment.completed",
    "form_submitted": "form.submitted",
}


def type_of(event_name: str | None) -> str | None:
    """The catalogue type a ``track`` event of this name is published as, or ``None``."""
    if event_name is None:
        return None
    if event_name in SUBSCRIBABLE and event_name not in NOTICES:
        return event_name
    return INTERNAL.get(event_name) or ALIASES.get(event_name)


def unknown(types: list[str]) -> list[str]:
    """Those of ``types`` that are neither catalogue types nor ``*``."""
    return [name for name in types if name != ANY and name not in SUBSCRIBABLE]


def listing() -> list[dict[str, Any]]:
    """The catalogue as the API lists it."""
    return [
        {"type": e.name, "version": e.version, "description": e.description, "schema": e.schema()}
        for e in TYPES
    ]
