"""The business's capture flows: one call each that fans out through the pipeline.

Each flow (an assessment completed, a consultation requested, a lead captured from any source):

1. creates or updates the contact by email (name split into first and last; the flow's facts as
   traits where they describe the person), as ``PUT /contacts`` does;
2. in the same transaction (one write, one wait for the profile lock): logs a CRM activity on the lead (the
   contact becomes a lead) and writes the tracking messages of the same write path ``/v1/batch`` uses — an
   ``identify`` and the flow's ``track`` event (``assessment.completed``, ``consultation.requested``,
   ``lead.captured``) with the UTM in ``context.campaign`` like the tracking API and hosted forms, and with
   a campaign a ``page`` carrying it, the touchpoint attribution reads (as a hosted form's post writes
   one). The pipeline then applies the event: journeys triggered by it start (a persona-specific journey is
   one with a condition on ``persona``) and webhook endpoints subscribed to it receive it.

**Idempotent** on the client's ``Idempotency-Key`` header (or ``messageId`` in the body; the header
wins): the same key answers the first call's result again (``replayed: true``) and changes nothing; the
activity (keyed by it) is logged once even when two calls race, and the tracking messages (``messageId``
derived from it) are stored once. Without a key every call is a new capture.

A ``consultation.requested`` creates a **task** for the lead's owner (unowned until routing or a person
assigns one), due after :data:`RESPONSE_TIME` — the business's promise of a response within 2 hours.
Consent given with a captured lead is recorded (event and trait ``marketing_consent``) but changes no
subscription, as a single opt-in form does not.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.ids import new_id

RESPONSE_TIME = timedelta(hours=2)
SOURCES = ("form", "chat", "content_download", "social_lead_ad", "other")
Strict = ConfigDict(extra="forbid", str_strip_whitespace=True)


class _Person(BaseModel):
    model_config = Strict
    email: str = Field(min_length=3, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    messageId: str | None = Field(  # noqa: N815 - the Segment name clients already send
        default=None, min_length=1, max_length=80, description="idempotency key (the header wins)"
    )


class Assessment(_Person):
    assessment_type: str = Field(min_length=1, max_length=100)
    persona: str | None = Field(default=None, max_length=100)
    readiness_score: int = Field(ge=0, le=100)
    recommended_service: str | None = Field(default=None, max_length=200)


class Consultation(_Person):
    topic: str = Field(min_length=1, max_length=200)
    message: str | None = Field(default=None, max_length=5000)
    preferred_contact: Literal["email", "phone", "video", "any"] = "any"
    phone: str | None = Field(default=None, max_length=32)


class Campaign(BaseModel):
    """UTM parameters (``utm_source`` …), as Segment's ``context.campaign`` names them."""

    model_config = Strict
    name: str | None = Field(default=None, max_length=200, description="utm_campaign")
    source: str | None = Field(default=None, max_length=200)
    medium: str | None = Field(default=None, max_length=200)
    term: str | None = Field(default=None, max_length=200)
    content: str | None = Field(default=None, max_length=200)


class CapturedLead(_Person):
    source: Literal["form", "chat", "content_download", "social_lead_ad", "other"]
    source_detail: str | None = Field(default=None, max_length=500, description="which form, chat, ad …")
    campaign: Campaign | None = None
    consent: bool | None = Field(default=None, description="marketing consent given with the lead")


class Captured(BaseModel):
    contact_id: str
    event: str
    message_id: str = Field(description="the messageId of the stored event")
    replayed: bool = Field(description="true: the key was seen before; nothing changed")


def _names(name: str | None) -> dict[str, str]:
    if not name:
        return {}
    first, _, last = name.partition(" ")
    return {"first_name": first, **({"last_name": last.strip()} if last.strip() else {})}


def _key(kind: str, given: str | None) -> tuple[str, str]:
    """``(base, activity key)``: the messages' ``messageId`` prefix and the activity's idempotency key
    (at most 64 characters, whatever the client's key)."""
    base = f"capture:{kind}:{given or new_id()}"
    return base, "capture:" + hashlib.sha256(base.encode()).hexdigest()[:40]


def _capture(
    ctx: AppContext,
    kind: str,
    person: _Person,
    idempotency_key: str | None,
    *,
    event: str,
    properties: dict[str, Any],
    traits: dict[str, Any],
    activity: tuple[str, str, str | None],
    campaign: Campaign | None = None,
    phone: str | None = None,
) -> Captured:
    base, key = _key(kind, idempotency_key or person.messageId)
    message_id = f"{base}:event"
    if idempotency_key or person.messageId:
        with ctx.db.read() as conn:
            seen = crm.logged(conn, [key]).get(key)
        if seen is not None:  # the first call's contact, whatever this body says
            return Captured(contact_id=seen, event=event, message_id=message_id, replayed=True)
    data = contacts.ContactUpsert(
        email=person.email,
        **_names(person.name),
        **({"phone": phone} if phone else {}),
        traits=traits or None,
    )
    activity_kind, subject, body = activity
    # one write transaction and one wait for the profile lock (taken by the upsert, held to the commit)
    with ctx.db.write() as conn:
        contact, _ = contacts.upsert_in(conn, ctx, data, actor=f"capture:{kind}")
        due = ctx.clock.now() + RESPONSE_TIME if activity_kind == "task" else None
        entry = crm.NewActivity(contact.id, activity_kind, subject, body, key, due_at=due)
        if not crm.log_activities(conn, ctx.clock, [entry], actor=f"capture:{kind}"):
            return Captured(contact_id=contact.id, event=event, message_id=message_id, replayed=True)
        now = ctx.clock.now()
        rows = _tracking(base, contact.email or person.email, event, properties, campaign)
        events.insert_tracked(conn, [events.to_row(raw, kind=None, received_at=now) for raw in rows])
        on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))
    return Captured(contact_id=contact.id, event=event, message_id=message_id, replayed=False)


def _tracking(
    base: str, email: str, event: str, properties: dict[str, Any], campaign: Campaign | None
) -> list[dict[str, Any]]:
    """The Segment messages of a capture, as ``/v1/batch`` would receive them."""
    context: dict[str, Any] = {}
    utm = campaign.model_dump(exclude_none=True) if campaign else {}
    if utm:
        context["campaign"] = utm
    who = {"anonymousId": base[:100], "context": context}
    found: list[dict[str, Any]] = [
        {"type": "identify", "messageId": f"{base}:identify", "traits": {"email": email}, **who}
    ]
    if utm:  # a visit carrying the UTM: the touchpoint attribution reads (as a hosted form's post)
        found.append({"type": "page", "messageId": f"{base}:page", "name": event, "properties": {}, **who})
    found.append(
        {"type": "track", "messageId": f"{base}:event", "event": event, "properties": properties, **who}
    )
    return found


def assessment(ctx: AppContext, data: Assessment, idempotency_key: str | None = None) -> Captured:
    """An assessment completed: the person's traits, a note on the timeline, ``assessment.completed``."""
    facts = {
        "assessment_type": data.assessment_type,
        "persona": data.persona,
        "readiness_score": data.readiness_score,
        "recommended_service": data.recommended_service,
    }
    body = "\n".join(
        f"{name.replace('_', ' ')}: {value}" for name, value in facts.items() if value is not None
    )
    return _capture(
        ctx,
        "assessment",
        data,
        idempotency_key,
        event="assessment.completed",
        properties=facts,
        traits={k: v for k, v in facts.items() if v is not None},
        activity=("note", f"Assessment completed: {data.assessment_type}", body),
    )


def consultation(ctx: AppContext, data: Consultation, idempotency_key: str | None = None) -> Captured:
    """A consultation requested: a task for the lead's owner and ``consultation.requested``."""
    properties = {
        "topic": data.topic,
        "message": data.message,
        "preferred_contact": data.preferred_contact,
    }
    body = f"Preferred contact: {data.preferred_contact}" + (f"\n\n{data.message}" if data.message else "")
    return _capture(
        ctx,
        "consultation",
        data,
        idempotency_key,
        event="consultation.requested",
        properties=properties,
        traits={},
        activity=("task", f"Consultation requested: {data.topic}", body),
        phone=data.phone,
    )


def lead(ctx: AppContext, data: CapturedLead, idempotency_key: str | None = None) -> Captured:
    """A lead captured from a source: ``lead.captured`` with the source and campaign (attribution)."""
    utm = data.campaign.model_dump(exclude_none=True) if data.campaign else {}
    properties = {
        "source": data.source,
        "source_detail": data.source_detail,
        "utm": {("utm_campaign" if k == "name" else f"utm_{k}"): v for k, v in utm.items()},
        "consent": data.consent,
    }
    traits: dict[str, Any] = {"lead_source": data.source}
    if data.consent is not None:
        traits["marketing_consent"] = data.consent
    detail = f" ({data.source_detail})" if data.source_detail else ""
    return _capture(
        ctx,
        "lead",
        data,
        idempotency_key,
        event="lead.captured",
        properties=properties,
        traits=traits,
        activity=("note", f"Lead captured from {data.source.replace('_', ' ')}{detail}", None),
        campaign=data.campaign,
    )
