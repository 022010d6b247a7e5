"""A form submission: checked against the form, then a contact, a consent record and events.

Rules:

* **Rate limit** first: each client address may post ``LEADFLOW_FORM_RATE_PER_MINUTE`` times a minute
  (:mod:`.throttle`); more answers ``429`` with ``Retry-After``.
* **Origin**: a form with allowed origins refuses a post whose browser says it comes from another site
  (``403 origin_not_allowed``); a post without ``Origin`` (a server, a plain form in an old browser) or
  from leadflow's own address is accepted.
* **Honeypot**: a post that fills the field hidden from people is answered as a success and stores
  nothing but the form's ``spam_count``.
* **Validation**: every error is reported at once, by field (``422 invalid_submission``); a form with a
  consent checkbox refuses a post without it.
* **Effects**, in one write transaction that takes no profile lock (so posts run side by side): the
  submission (the consent record: text, time, address; no contact yet), the double opt-in hold on the
  address, and the tracking events of the same write path ``/v1/batch`` uses: an ``identify`` carrying
  the email, first/last name and phone (from the fields of those names) and the other visible fields as
  traits, linking the browser's anonymous id; a ``page`` carrying the UTM and the page address (the
  touchpoint attribution reads) and the ``form.submitted`` track. The event processor then makes or
  updates the contact by email in its set-based batch (one contact for concurrent posts of one address)
  and :mod:`.processed` links the submission, adds the static list and the tags and queues the
  confirmation email. A post answered ``2xx`` is committed, so it is never lost; its answer names no
  contact. Of the visible fields, ``name`` and ``timezone`` are read as the identify reads them (a full
  name when the form has no first/last name; a valid time zone), and ``unsubscribed`` stays a text
  trait: a public post never changes a subscription.
* **Double opt-in**: a new contact, one not subscribed, or one whose address still waits for a
  confirmation, is held (no marketing) until the link in the confirmation email is followed; a
  subscribed contact is not held again. A single opt-in form changes no contact's subscription: an
  unsubscribed person who posts one stays unsubscribed (only a confirmed double opt-in re-subscribes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.capture import queries, throttle
from leadflow.capture.forms import CONFIRMATION_TEMPLATE, fields_of, install_confirmation, row
from leadflow.capture.schemas import CONSENT, HONEYPOT, UTM_FIELDS, FormField, FormFields
from leadflow.contacts import service as contacts
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Forbidden, Invalid
from leadflow.kernel.ids import new_id
from leadflow.messaging import service as messaging

COLUMN_FIELDS = ("first_name", "last_name", "phone")
TRUE = frozenset({"on", "true", "1", "yes"})
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
TEL = re.compile(r"^\+?[0-9 ()./-]{4,32}$")


class SubmissionInvalid(Invalid):
    """The post breaks the form's rules; ``details`` maps each field to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("the form has errors", code="invalid_submission", details={"fields": errors})
        self.errors = errors


@dataclass
class Posted:
    """What a browser sent, and from where."""

    values: Mapping[str, Any]
    ip: str | None = None
    origin: str | None = None
    referer: str | None = None
    user_agent: str | None = None


@dataclass
class Outcome:
    form: FormFields
    form_id: str
    submission_id: str | None  # None for a honeypot hit
    values: dict[str, Any] = field(default_factory=dict)


def _text(value: Any, limit: int) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = (str(value).lower() if isinstance(value, bool) else str(value)).strip()
    return text[:limit] or None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str | int) and str(value).strip().lower() in TRUE)


def _one(spec: FormField, raw: Any) -> tuple[Any, str | None]:
    """The clean value of one field, or the reason it is refused."""
    if spec.type == "checkbox":
        checked = _truthy(raw)
        return checked, ("this box must be checked" if spec.required and not checked else None)
    if isinstance(raw, dict | list):
        return None, "a single value is expected"
    text = None if raw is None else (str(raw).lower() if isinstance(raw, bool) else str(raw)).strip()
    if spec.type == "hidden" and not text:
        text = spec.value
    if not text:
        return None, ("this field is required" if spec.required else None)
    if len(text) > spec.limit:
        return None, f"at most {spec.limit} characters"
    if spec.type == "email" and not EMAIL.match(text):
        return None, "not an email address"
    if spec.type == "tel" and not TEL.match(text):
        return None, "not a phone number"
    if spec.type == "select" and text not in (spec.options or []):
        return None, "not one of the choices"
    if spec.pattern and not re.fullmatch(spec.pattern, text):
        return None, "not in the expected format"
    if spec.type == "number":
        try:
            number = float(text)
        except ValueError:
            return None, "not a number"
        if not math.isfinite(number):
            return None, "not a number"
        return (int(number) if number.is_integer() else number), None
    return text, None


def clean(form: FormFields, values: Mapping[str, Any]) -> dict[str, Any]:
    """The submitted fields, checked; raises :class:`SubmissionInvalid` with every error."""
    found: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in form.fields:
        value, error = _one(spec, values.get(spec.name))
        if error:
            errors[spec.name] = error
        elif value is not None:
            found[spec.name] = value
    if form.consent is not None and not _truthy(values.get(CONSENT)):
        errors[CONSENT] = "your consent is required"
    if errors:
        raise SubmissionInvalid(errors)
    return found


def _meta(values: Mapping[str, Any], posted: Posted) -> dict[str, Any]:
    utm = {name: v for name in UTM_FIELDS if (v := _text(values.get(name), 255))}
    return {
        "utm": utm,
        "page_url": _text(values.get("page_url"), 2000) or _text(posted.referer, 2000),
        "referrer": _text(values.get("referrer"), 2000),
        "anonymous_id": _text(values.get("anonymous_id"), 255),
    }


def check_origin(ctx: AppContext, form: FormFields, origin: str | None) -> None:
    own = ctx.settings.public_url.rstrip("/")
    if form.allowed_origins and origin and origin != own and origin not in form.allowed_origins:
        raise Forbidden(f"this form may not be posted from {origin[:100]}", code="origin_not_allowed")


def submit(ctx: AppContext, form_id: str, posted: Posted) -> Outcome:
    """Take one post of the form (see the module's rules)."""
    with ctx.db.read() as conn:
        form = fields_of(row(conn, form_id))
        confirmation = not form.double_opt_in or bool(messaging.template_ids(conn, [CONFIRMATION_TEMPLATE]))
    check_origin(ctx, form, posted.origin)
    throttle.check(ctx, posted.ip)
    if _text(posted.values.get(HONEYPOT), 1000):
        with ctx.db.write() as conn:
            conn.execute(queries.COUNT_SPAM, {"form_id": form_id})
        return Outcome(form, form_id, None)
    values = clean(form, posted.values)
    identity = _identity(ctx, form, values)
    if not confirmation:  # the first double opt-in post since the template went: its own transaction
        install_confirmation(ctx, actor="system")
    submission_id = new_id()
    # One write transaction per post and no profile lock: the submission, the double opt-in hold and
    # the events; the event processor makes or updates the contact from the identify (see .processed).
    with ctx.db.write() as conn:
        _record(conn, ctx, form, form_id, submission_id, identity, values, posted)
    return Outcome(form, form_id, submission_id, values)


def _identity(ctx: AppContext, form: FormFields, values: dict[str, Any]) -> dict[str, Any]:
    """The identify's traits: the canonical email, first/last name and phone (checked now, so a phone
    the contacts domain cannot read is this post's ``422``), and the other visible fields."""
    hidden = {f.name for f in form.fields if f.type == "hidden"}
    traits = {k: v for k, v in values.items() if k not in (*COLUMN_FIELDS, "email") and k not in hidden}
    data = contacts.ContactUpsert(
        email=values["email"], **{k: str(values[k]) for k in COLUMN_FIELDS if k in values}
    )
    try:
        changes = contacts.changes_from(data, ctx.settings.default_phone_region)
    except Invalid as exc:
        name = "phone" if "phone" in exc.code or "phone" in exc.message else "email"
        raise SubmissionInvalid({name: exc.message}) from None
    # a public post never changes a subscription: an ``unsubscribed`` field is kept as a text trait
    kept = {
        k: (str(v).lower() if k == "unsubscribed" and isinstance(v, bool) else v) for k, v in traits.items()
    }
    columns = {k: getattr(changes, k) for k in ("email", *COLUMN_FIELDS) if k in changes.set_fields()}
    return {**kept, **columns}


def _pending(conn: Connection, ctx: AppContext, form: FormFields, address: str) -> bool:
    """A double opt-in post waits for confirmation unless its address is a subscribed contact's that
    no confirmation holds (read without the profile lock: two first posts of one address both wait)."""
    if not form.double_opt_in:
        return False
    contact_id = contacts.contact_id_for_email(conn, address)
    if contact_id is None:
        return True
    return contacts.get(
        conn, contact_id
    ).subscription_status != "subscribed" or messaging.held_for_confirmation(conn, ctx, address)


def _record(
    conn: Connection,
    ctx: AppContext,
    form: FormFields,
    form_id: str,
    submission_id: str,
    identity: dict[str, Any],
    values: dict[str, Any],
    posted: Posted,
) -> None:
    now = ctx.clock.now()
    meta = _meta(posted.values, posted)
    address = identity["email"]
    pending = _pending(conn, ctx, form, address)
    conn.execute(
        queries.SUBMISSION_INSERT,
        {
            "id": submission_id,
            "form_id": form_id,
            "contact_id": None,  # linked by the event processor (see .processed)
            "email": address,
            "data": values,
            "utm": meta["utm"] or None,
            "page_url": meta["page_url"],
            "referrer": meta["referrer"],
            "ip": posted.ip,
            "consent_text": form.consent.text if form.consent else None,
            "consented_at": now if form.consent else None,
            "status": "pending" if pending else "single",
            "confirmed_at": None,
            "created_at": now,
        },
    )
    if pending:
        messaging.hold_for_confirmation(conn, ctx, address)
    rows = _tracking(form, form_id, submission_id, values, identity, meta, posted)
    events.insert_tracked(conn, [events.to_row(raw, kind=None, received_at=now) for raw in rows])
    on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))


def _tracking(
    form: FormFields,
    form_id: str,
    submission_id: str,
    values: dict[str, Any],
    identity: dict[str, Any],
    meta: dict[str, Any],
    posted: Posted,
) -> list[dict[str, Any]]:
    """The Segment messages of a submission, as ``/v1/batch`` would receive them from the page."""
    utm = meta["utm"]
    campaign = {("name" if k == "utm_campaign" else k.removeprefix("utm_")): v for k, v in utm.items()}
    page = {"url": meta["page_url"], "referrer": meta["referrer"]}
    context: dict[str, Any] = {"page": {k: v for k, v in page.items() if v}}
    if campaign:
        context["campaign"] = campaign
    if posted.ip:
        context["ip"] = posted.ip
    if posted.user_agent:
        context["userAgent"] = posted.user_agent[:500]
    who = {"anonymousId": meta["anonymous_id"] or f"form-{submission_id}", "context": context}
    key = f"form:{submission_id}"
    found: list[dict[str, Any]] = [
        {"type": "identify", "messageId": f"{key}:identify", "traits": identity, **who}
    ]
    if meta["page_url"] or utm:
        properties = {k: v for k, v in page.items() if v}
        found.append(
            {"type": "page", "messageId": f"{key}:page", "name": form.name, "properties": properties, **who}
        )
    properties = {
        "form_id": form_id,
        "form_name": form.name,
        "submission_id": submission_id,
        "fields": values,
        "utm": utm,
        "page_url": meta["page_url"],
        "referrer": meta["referrer"],
        "journey_id": form.journey_id,
        "double_opt_in": form.double_opt_in,
    }
    found.append(
        {
            "type": "track",
            "messageId": f"{key}:submitted",
            "event": "form.submitted",
            "properties": properties,
            **who,
        }
    )
    return found
