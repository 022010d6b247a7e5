"""Segment Spec messages: validation and conversion into event-log rows.

Rules (from the Segment HTTP Tracking API): every message needs ``userId`` or ``anonymousId``;
``track`` needs ``event``; ``alias`` needs ``previousId`` and ``userId``; ``group`` needs ``groupId``;
``messageId`` (at most 100 characters) de-duplicates and is generated when absent; each message is at
most 32 KB. Unlike Segment, which answers 200 and silently drops an invalid message, leadflow refuses
the whole request with a 400 naming the message, so nothing is lost without the sender knowing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadflow.kernel import jsonutil
from leadflow.kernel.clock import as_utc
from leadflow.kernel.errors import BadRequest

MESSAGE_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
MAX_MESSAGE_BYTES = 32 * 1024
MAX_REQUEST_BYTES = 500 * 1024
MAX_BATCH_MESSAGES = 2500
MAX_ID_LENGTH = 255
MAX_MESSAGE_ID_LENGTH = 100
MAX_NAME_LENGTH = 255

_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")


class MessageError(BadRequest):
    """A message that breaks a rule of the spec; ``index`` is its position in a batch."""

    def __init__(self, message: str, *, code: str, index: int | None = None) -> None:
        where = f"batch[{index}]: " if index is not None else ""
        super().__init__(where + message, code=code, details={"index": index} if index is not None else None)


@dataclass(frozen=True)
class BatchDefaults:
    """Values a batch body gives to the messages that lack them."""

    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sent_at: datetime | None = None


def parse_time(value: Any, field: str, index: int | None) -> datetime:
    if not isinstance(value, str):
        raise MessageError(f"'{field}' must be an ISO-8601 string", code="invalid_timestamp", index=index)
    try:
        return as_utc(datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise MessageError(
            f"'{field}' is not an ISO-8601 date-time: {value[:40]!r}", code="invalid_timestamp", index=index
        ) from None


def _identifier(raw: dict[str, Any], field: str, index: int | None) -> str | None:
    value = raw.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MessageError(f"'{field}' must be a string", code="invalid_id", index=index)
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise MessageError(
            f"'{field}' is longer than {MAX_ID_LENGTH} characters", code="invalid_id", index=index
        )
    return text


def _name(raw: dict[str, Any], field: str, index: int | None) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MessageError(f"'{field}' must be a string", code="invalid_field", index=index)
    if len(value) > MAX_NAME_LENGTH:
        raise MessageError(
            f"'{field}' is longer than {MAX_NAME_LENGTH} characters", code="invalid_field", index=index
        )
    return value


def event_timestamp(
    raw: dict[str, Any], defaults: BatchDefaults, received_at: datetime, index: int | None
) -> datetime:
    """When the event happened.

    An explicit ``timestamp`` is used as given. Otherwise ``originalTimestamp`` is corrected for the
    sender's clock skew as Segment does: ``receivedAt - (sentAt - originalTimestamp)``. With neither,
    the event happened when it was received.
    """
    if raw.get("timestamp") is not None:
        return parse_time(raw["timestamp"], "timestamp", index)
    if raw.get("originalTimestamp") is None:
        return received_at
    original = parse_time(raw["originalTimestamp"], "originalTimestamp", index)
    sent_at = (
        parse_time(raw["sentAt"], "sentAt", index) if raw.get("sentAt") is not None else defaults.sent_at
    )
    if sent_at is None:
        return original
    try:
        return received_at - (sent_at - original)
    except OverflowError:
        raise MessageError(
            "'sentAt' and 'originalTimestamp' are too far apart to be a clock skew",
            code="invalid_timestamp",
            index=index,
        ) from None


def _objects(raw: dict[str, Any], defaults: BatchDefaults, index: int | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in _OBJECT_FIELDS:
        value = raw.get(field)
        if value is not None and not isinstance(value, dict):
            raise MessageError(f"'{field}' must be an object", code="invalid_field", index=index)
        values[field] = value or None
    if values["context"] is None and defaults.context:
        values["context"] = defaults.context
    if values["integrations"] is None and defaults.integrations:
        values["integrations"] = defaults.integrations
    return values


def _check_required(kind: str, row: dict[str, Any], index: int | None) -> None:
    if kind == "alias":
        if not row["previous_id"]:
            raise MessageError("alias needs 'previousId'", code="no_previous_id", index=index)
        if not row["user_id"]:
            raise MessageError("alias needs 'userId'", code="no_user_id", index=index)
        return
    if not row["user_id"] and not row["anonymous_id"]:
        raise MessageError(
            "every message needs 'userId' or 'anonymousId'", code="no_user_anon_id", index=index
        )
    if kind == "track" and not row["event"]:
        raise MessageError("track needs a non-empty 'event'", code="no_event", index=index)
    if kind == "group" and not row["group_id"]:
        raise MessageError("group needs 'groupId'", code="no_group_id", index=index)


def message_id(raw: dict[str, Any], index: int | None) -> str:
    value = raw.get("messageId")
    if value is None or value == "":
        return str(uuid.uuid4())
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise MessageError("'messageId' must be a string", code="invalid_message_id", index=index)
    text = str(value)
    if len(text) > MAX_MESSAGE_ID_LENGTH:
        raise MessageError(
            f"'messageId' is longer than {MAX_MESSAGE_ID_LENGTH} characters",
            code="invalid_message_id",
            index=index,
        )
    return text


def to_row(
    raw: Any,
    *,
    kind: str | None,
    received_at: datetime,
    defaults: BatchDefaults = BatchDefaults(),
    index: int | None = None,
    check_size: bool = True,
) -> dict[str, Any]:
    """Validate one Segment message and return the ``events`` row for it."""
    if not isinstance(raw, dict):
        raise MessageError("a message must be a JSON object", code="invalid_message", index=index)
    kind = kind or raw.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        raise MessageError(f"unknown message type {kind!r}", code="invalid_type", index=index)
    if check_size and len(jsonutil.dumpb(raw)) > MAX_MESSAGE_BYTES:
        raise MessageError("message is larger than 32 KB", code="message_too_large", index=index)
    row: dict[str, Any] = {
        "message_id": message_id(raw, index),
        "type": kind,
        "event": _name(raw, "event", index) if kind == "track" else None,
        "name": _name(raw, "name", index) if kind in ("page", "screen") else None,
        "user_id": _identifier(raw, "userId", index),
        "anonymous_id": _identifier(raw, "anonymousId", index),
        "group_id": _identifier(raw, "groupId", index) if kind == "group" else None,
        "previous_id": _identifier(raw, "previousId", index) if kind == "alias" else None,
        "timestamp": event_timestamp(raw, defaults, received_at, index),
        "received_at": received_at,
        "source": "segment",
        **_objects(raw, defaults, index),
    }
    if kind == "page" and isinstance(raw.get("category"), str):
        row["properties"] = {"category": raw["category"], **(row["properties"] or {})}
    _check_required(kind, row, index)
    return row


def batch_defaults(body: dict[str, Any]) -> BatchDefaults:
    context, integrations = body.get("context"), body.get("integrations")
    if context is not None and not isinstance(context, dict):
        raise MessageError("'context' must be an object", code="invalid_field")
    if integrations is not None and not isinstance(integrations, dict):
        raise MessageError("'integrations' must be an object", code="invalid_field")
    sent_at = parse_time(body["sentAt"], "sentAt", None) if body.get("sentAt") is not None else None
    return BatchDefaults(context=context or None, integrations=integrations or None, sent_at=sent_at)


def batch_rows(body: Any, received_at: datetime, *, body_bytes: int | None = None) -> list[dict[str, Any]]:
    """Rows for a ``/v1/batch`` body; the whole batch is refused if any message is invalid.

    ``body_bytes``, the size of the request, spares measuring each message when the whole body is
    within the per-message limit.
    """
    if not isinstance(body, dict) or not isinstance(body.get("batch"), list):
        raise MessageError("the body must be an object with a 'batch' array", code="invalid_batch")
    messages = body["batch"]
    if len(messages) > MAX_BATCH_MESSAGES:
        raise MessageError(
            f"a batch holds at most {MAX_BATCH_MESSAGES} messages, this one has {len(messages)}",
            code="too_many_messages",
        )
    defaults = batch_defaults(body)
    check_size = body_bytes is None or body_bytes > MAX_MESSAGE_BYTES
    return [
        to_row(raw, kind=None, received_at=received_at, defaults=defaults, index=i, check_size=check_size)
        for i, raw in enumerate(messages)
    ]


def single_row(kind: str, body: Any, received_at: datetime) -> dict[str, Any]:
    """The row for a single-message endpoint (the request size limit already bounds it to 32 KB)."""
    return to_row(body, kind=kind, received_at=received_at, check_size=False)
