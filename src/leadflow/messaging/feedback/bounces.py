"""Bounce and complaint feedback: delivery status notifications, ARF reports and email providers' webhooks.

Everything here is pure parsing into :class:`Feedback` records; suppressing addresses and updating messages
is the caller's business, and so is authenticating webhooks (SendGrid's signed events, Mailgun's
``signature`` block, SNS message signatures) before their payload gets here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any, Literal

__all__ = ["Feedback", "parse_dsn", "parse_provider"]

Kind = Literal["bounce", "complaint", "delayed"]


@dataclass(frozen=True)
class Feedback:
    """What a mailbox provider told us about one recipient of one message.

    * ``kind``: ``"bounce"`` (delivery failed), ``"complaint"`` (marked as spam) or ``"delayed"`` (still
      being retried; nothing to suppress).
    * ``hard``: the address should not be mailed again: a permanent bounce (5.x.x, or the provider says so),
      and every complaint. Soft bounces and delays are ``False``.
    * ``email``: the recipient, lower-cased.
    * ``message_id``: the ``Message-ID`` header of our original message, without ``<>``, when known.
    * ``detail``: the diagnostic in a human's words (the remote server's answer when there is one).
    * ``provider``: ``"dsn"``, ``"arf"`` or the webhook provider's name.
    """

    kind: Kind
    email: str
    hard: bool
    message_id: str | None
    detail: str
    provider: str


# --- RFC 3464 delivery status notifications and RFC 5965 ARF reports ---------------------------------

_STATUS_PARTS = {"message/delivery-status", "message/global-delivery-status"}
_ORIGINAL_PARTS = {
    "message/rfc822",
    "text/rfc822-headers",
    "message/rfc822-headers",
    "message/global",
    "message/global-headers",
}
_STATUS = re.compile(r"\s*([245])\.\d{1,3}\.\d{1,3}")
_SMTP_CODE = re.compile(r"\s*([245])\d\d\b")
_ACTIONS: dict[str, Kind] = {"failed": "bounce", "delayed": "delayed"}


def parse_dsn(raw: bytes) -> list[Feedback]:
    """Feedback from a bounce or complaint email; ``[]`` for anything that is not such a report.

    * RFC 3464 DSN (``multipart/report; report-type=delivery-status``): one record per recipient block whose
      ``Action`` is ``failed`` (a bounce: hard for a 5.x.x ``Status``, soft for 4.x.x, which is a
      server giving up on retries) or ``delayed``; ``delivered``/``relayed``/``expanded`` are no news. The
      address is ``Original-Recipient`` (the one we sent to) or else ``Final-Recipient``.
    * RFC 5965 ARF (``report-type=feedback-report``) with ``Feedback-Type: abuse``: a complaint for the
      envelope recipient (``Original-Rcpt-To``) or else the original message's ``To``. Other feedback types
      (fraud, virus, not-spam, auth-failure...) are not complaints about our mail and give ``[]``.

    Our ``Message-ID`` comes from the returned message or headers part (``message/rfc822``,
    ``text/rfc822-headers``).
    """
    message = BytesParser(policy=policy.default).parsebytes(raw)
    if message.get_content_type() != "multipart/report":
        return []
    parts: list[Message] = list(message.iter_parts())
    original = _original(parts)
    message_id = _message_id(_field(original, "Message-ID")) if original is not None else None
    for part in parts:
        kind = part.get_content_type()
        if kind in _STATUS_PARTS:
            return _dsn(part, message_id)
        if kind == "message/feedback-report":
            return _arf(part, original, message_id)
    return []


def _dsn(part: Message, message_id: str | None) -> list[Feedback]:
    found = []
    for block in _blocks(part):
        action = _field(block, "Action").lower().split(" ", 1)[0]
        kind = _ACTIONS.get(action)
        email = _recipient(_field(block, "Original-Recipient")) or _recipient(
            _field(block, "Final-Recipient")
        )
        if kind is None or email is None:
            continue
        status = _field(block, "Status")
        diagnostic = _diagnostic(_field(block, "Diagnostic-Code"))
        klass = _STATUS.match(status) or _SMTP_CODE.match(diagnostic)
        hard = kind == "bounce" and (klass is None or klass.group(1) == "5")
        detail = diagnostic or (f"{action} ({status})" if status else action)
        found.append(Feedback(kind, email, hard, message_id, detail, "dsn"))
    return found


def _blocks(part: Message) -> list[Message]:
    """The field blocks of a delivery-status part (per-message first, then one per recipient)."""
    payload = part.get_payload()
    blocks = [block for block in payload if isinstance(block, Message)] if isinstance(payload, list) else []
    if part.get_content_subtype() != "delivery-status" and len(blocks) == 1:
        # The stdlib only splits message/delivery-status into blocks; it reads message/global-delivery-status
        # as an encapsulated message whose body holds the blocks after the first.
        body = blocks[0].get_payload()
        if isinstance(body, str):
            parser = HeaderParser(policy=policy.default)
            blocks += [parser.parsestr(chunk.strip() + "\n") for chunk in re.split(r"\n\s*\n", body)]
    return blocks


def _arf(part: Message, original: Message | None, message_id: str | None) -> list[Feedback]:
    fields = _first_message(part)
    if fields is None or _field(fields, "Feedback-Type").lower() != "abuse":
        return []
    recipients = _fields(fields, "Original-Rcpt-To")
    if not recipients and original is not None:
        recipients = _fields(original, "To")
    pairs = getaddresses(recipients)
    emails = dict.fromkeys(email for _, address in pairs if (email := _address(address)) is not None)
    agent = _field(fields, "User-Agent")
    detail = f"abuse report by {agent}" if agent else "abuse report"
    return [Feedback("complaint", email, True, message_id, detail, "arf") for email in emails]


def _original(parts: list[Message]) -> Message | None:
    """The returned original message, or just its headers."""
    for part in parts:
        if part.get_content_type() in _ORIGINAL_PARTS:
            return _first_message(part)
    return None


def _first_message(part: Message) -> Message | None:
    """The message inside a ``message/*`` part, or a text part parsed as headers."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    text = part.get_payload(decode=True)
    if not isinstance(text, bytes):
        return None
    return HeaderParser(policy=policy.default).parsestr(text.decode("utf-8", "replace"))


def _fields(message: Message, name: str) -> list[str]:
    """A header's values, unfolded, as sent: the policy's header parsers choke on some malformed values
    (``Message-ID: <<>>`` raises an IndexError), and bounces are written by every MTA under the sun."""
    name = name.lower()
    return [" ".join(str(value).split()) for key, value in message.raw_items() if key.lower() == name]


def _field(message: Message, name: str) -> str:
    values = _fields(message, name)
    return values[0] if values else ""


def _recipient(field: str) -> str | None:
    """The address of an ``rfc822; user@example.org`` recipient field."""
    kind, _, address = field.partition(";")
    if not address or kind.strip().lower() not in ("rfc822", "utf-8"):
        return None
    return _address(address)


def _diagnostic(field: str) -> str:
    """``smtp; 550 5.1.1 ...`` -> ``550 5.1.1 ...``."""
    kind, sep, rest = field.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else field


# --- Email providers' webhooks ------------------------------------------------------------------------


def parse_provider(provider: str, payload: Any) -> list[Feedback]:
    """Feedback from a provider's webhook payload (parsed JSON, or the raw JSON text).

    ``provider`` is ``"sendgrid"``, ``"postmark"``, ``"mailgun"``, ``"ses"`` or ``"leadflow"`` (our own
    format). Events that are not feedback (deliveries, opens...) are skipped. ``ValueError`` for an unknown
    provider or a payload that is not what that provider sends.
    """
    parser = _PROVIDERS.get(provider)
    if parser is None:
        raise ValueError(f"unknown feedback provider {provider!r} (known: {', '.join(sorted(_PROVIDERS))})")
    if isinstance(payload, bytes | str):
        payload = _json(payload, f"{provider} payload")
    return parser(payload)


def _sendgrid(payload: Any) -> list[Feedback]:
    """Event Webhook: an array of events. ``bounce`` (``type`` ``bounce`` is hard, ``blocked`` soft),
    ``dropped`` (hard when SendGrid drops the address itself: a bounced, invalid, complaining or
    unsubscribed address; soft when it is the message), ``spamreport``, ``deferred``."""
    found = []
    for index, event in enumerate(_items(payload)):
        where = f"sendgrid event {index}"
        item = _object(event, where)
        name = _need(item, "event", where)
        reason = _text(item, "reason", where) or _text(item, "response", where) or ""
        kind: Kind
        if name == "bounce":
            kind, hard = "bounce", _text(item, "type", where) != "blocked"
        elif name == "dropped":
            kind, hard = "bounce", reason.strip().lower() in _SENDGRID_ADDRESS_DROPS
        elif name == "spamreport":
            kind, hard = "complaint", True
        elif name == "deferred":
            kind, hard = "delayed", False
        else:
            continue
        detail = reason or _text(item, "status", where) or name
        message_id = _message_id(_text(item, "smtp-id", where))
        found.append(Feedback(kind, _email(item, "email", where), hard, message_id, detail, "sendgrid"))
    return found


_SENDGRID_ADDRESS_DROPS = {"bounced address", "invalid", "spam reporting address", "unsubscribed address"}


def _postmark(payload: Any) -> list[Feedback]:
    """Bounce webhook (``RecordType: Bounce``, by ``Type``) and spam complaint webhook
    (``RecordType: SpamComplaint``). Postmark's ``MessageID`` is its own; ours is ``Metadata.message_id``
    when the sender put it there."""
    found = []
    for index, record in enumerate(_items(payload)):
        where = f"postmark record {index}"
        item = _object(record, where)
        record_type = _need(item, "RecordType", where)
        bounce_type = _text(item, "Type", where) or ""
        kind: Kind
        if record_type == "SpamComplaint" or bounce_type == "SpamComplaint":
            kind, hard = "complaint", True
        elif record_type == "Bounce" and bounce_type in _POSTMARK_TYPES:
            kind, hard = _POSTMARK_TYPES[bounce_type]
        else:
            continue
        metadata = item.get("Metadata")
        ours = metadata.get("message_id") if isinstance(metadata, dict) else None
        message_id = _message_id(ours) if isinstance(ours, str) else None
        detail = _text(item, "Details", where) or _text(item, "Description", where) or bounce_type
        found.append(Feedback(kind, _email(item, "Email", where), hard, message_id, detail, "postmark"))
    return found


# Postmark bounce types that are news about the recipient (others are auto-replies, our own errors...).
_POSTMARK_TYPES: dict[str, tuple[Kind, bool]] = {
    "HardBounce": ("bounce", True),
    "BadEmailAddress": ("bounce", True),
    "ManuallyDeactivated": ("bounce", True),
    "SoftBounce": ("bounce", False),
    "DnsError": ("bounce", False),
    "Blocked": ("bounce", False),
    "SpamNotification": ("bounce", False),
    "VirusNotification": ("bounce", False),
    "DMARCPolicy": ("bounce", False),
    "Unknown": ("bounce", False),
    "Transient": ("delayed", False),
}


def _mailgun(payload: Any) -> list[Feedback]:
    """Webhooks v3: ``{"signature": ..., "event-data": {...}}``. ``failed`` with ``severity: permanent``
    is a hard bounce. ``severity: temporary`` is sent for every failed attempt while Mailgun keeps
    retrying, so it is ``delayed`` — except with ``reason: old``, Mailgun giving up: a soft bounce.
    ``complained`` is a complaint."""
    data = _object(_object(payload, "mailgun payload").get("event-data"), "mailgun event-data")
    event = _need(data, "event", "mailgun event-data")
    kind: Kind
    if event == "complained":
        kind, hard = "complaint", True
    elif event == "failed" and data.get("severity") == "permanent":
        kind, hard = "bounce", True
    elif event == "failed":
        kind, hard = ("bounce", False) if data.get("reason") == "old" else ("delayed", False)
    else:
        return []
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    raw_id = headers.get("message-id") if isinstance(headers, dict) else None
    message_id = _message_id(raw_id) if isinstance(raw_id, str) else None
    email = _email(data, "recipient", "mailgun event-data")
    return [Feedback(kind, email, hard, message_id, _mailgun_detail(data, kind, event), "mailgun")]


def _mailgun_detail(data: dict[str, Any], kind: Kind, event: str) -> str:
    detail = event if kind == "complaint" else str(data.get("reason") or event)
    status = data.get("delivery-status")
    if isinstance(status, dict):
        text = " ".join(str(status.get(key) or "") for key in ("code", "message")).strip()
        detail = text or str(status.get("description") or detail)
    return detail


def _ses(payload: Any) -> list[Feedback]:
    """Amazon SES through SNS: the SNS envelope (``Type: Notification`` with the notification as a JSON
    string in ``Message``) or the notification itself. ``Bounce`` (``Permanent`` is hard; ``Transient`` and
    ``Undetermined`` soft), ``Complaint``, and event publishing's ``DeliveryDelay``. SNS subscription
    confirmations give ``[]`` (the endpoint confirms them)."""
    envelope = _object(payload, "ses payload")
    if envelope.get("Type") in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        return []
    inner = envelope
    if envelope.get("Type") == "Notification":
        inner = _object(_json(_need(envelope, "Message", "ses notification"), "ses Message"), "ses Message")
    kind = inner.get("notificationType") or inner.get("eventType")
    message_id = _ses_message_id(inner.get("mail"))
    if kind == "Bounce":
        bounce = _object(inner.get("bounce"), "ses bounce")
        hard = bounce.get("bounceType") == "Permanent"
        fallback = f"{bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
        rows = _ses_rows(bounce, "bouncedRecipients")
        return [Feedback("bounce", e, hard, message_id, d or fallback, "ses") for e, d in rows]
    if kind == "Complaint":
        complaint = _object(inner.get("complaint"), "ses complaint")
        fallback = str(complaint.get("complaintFeedbackType") or "complaint")
        rows = _ses_rows(complaint, "complainedRecipients")
        return [Feedback("complaint", e, True, message_id, fallback, "ses") for e, _ in rows]
    if kind == "DeliveryDelay":
        delay = _object(inner.get("deliveryDelay"), "ses deliveryDelay")
        fallback = str(delay.get("delayType") or "delayed")
        rows = _ses_rows(delay, "delayedRecipients")
        return [Feedback("delayed", e, False, message_id, d or fallback, "ses") for e, d in rows]
    if not isinstance(kind, str):
        raise ValueError("ses notification: no notificationType or eventType")
    return []


def _ses_rows(section: dict[str, Any], key: str) -> list[tuple[str, str]]:
    where = f"ses {key}"
    rows = section.get(key)
    if not isinstance(rows, list):
        raise ValueError(f"{where}: expected a list")
    items = [_object(row, f"{where}[{index}]") for index, row in enumerate(rows)]
    return [(_email(item, "emailAddress", where), str(item.get("diagnosticCode") or "")) for item in items]


def _ses_message_id(mail: Any) -> str | None:
    if not isinstance(mail, dict):
        return None
    common = mail.get("commonHeaders")
    if isinstance(common, dict) and isinstance(common.get("messageId"), str):
        return _message_id(common["messageId"])
    for header in mail.get("headers") or ():
        if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
            return _message_id(str(header.get("value", "")))
    return None


def _leadflow(payload: Any) -> list[Feedback]:
    """Our own format: ``{"type": "bounce"|"complaint"|"delayed", "email", "hard", "message_id",
    "detail"}`` or a list of them. ``hard`` defaults to true for a complaint, false otherwise."""
    found = []
    for index, entry in enumerate(_items(payload)):
        where = f"leadflow feedback {index}"
        item = _object(entry, where)
        kind = _need(item, "type", where)
        if kind not in _KINDS:
            raise ValueError(f"{where}: type must be bounce, complaint or delayed, not {kind!r}")
        hard = item.get("hard", kind == "complaint")
        if not isinstance(hard, bool):
            raise ValueError(f"{where}: hard must be true or false")
        message_id = _message_id(_text(item, "message_id", where))
        detail = _text(item, "detail", where) or ""
        found.append(
            Feedback(_KINDS[kind], _email(item, "email", where), hard, message_id, detail, "leadflow")
        )
    return found


_KINDS: dict[str, Kind] = {"bounce": "bounce", "complaint": "complaint", "delayed": "delayed"}

_PROVIDERS: dict[str, Callable[[Any], list[Feedback]]] = {
    "sendgrid": _sendgrid,
    "postmark": _postmark,
    "mailgun": _mailgun,
    "ses": _ses,
    "leadflow": _leadflow,
}


# --- Shared helpers -----------------------------------------------------------------------------------


def _json(text: str | bytes, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as error:
        raise ValueError(f"{where}: not valid JSON ({error})") from None


def _items(payload: Any) -> list[Any]:
    return payload if isinstance(payload, list) else [payload]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _text(item: dict[str, Any], key: str, where: str) -> str | None:
    """An optional string field."""
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{where}: {key!r} must be a string")
    return value


def _need(item: dict[str, Any], key: str, where: str) -> str:
    """A required, non-blank string field."""
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: {key!r} must be a non-empty string")
    return value


def _email(item: dict[str, Any], key: str, where: str) -> str:
    email = _address(_need(item, key, where))
    if email is None:
        raise ValueError(f"{where}: {key!r} is not an email address")
    return email


def _address(text: str) -> str | None:
    """``Jane <Jane@Example.org>`` -> ``jane@example.org``; None when there is no address."""
    address = parseaddr(text.strip())[1] or text.strip().strip("<>")
    address = address.strip().lower()
    return address if "@" in address and " " not in address else None


def _message_id(value: Any) -> str | None:
    """A Message-ID without its angle brackets (the first one, for a header that has several)."""
    if value is None:
        return None
    text = str(value).strip()
    match = re.search(r"<([^<>\s]+)>", text)
    text = match.group(1) if match else text.strip("<>").strip()
    return text or None
