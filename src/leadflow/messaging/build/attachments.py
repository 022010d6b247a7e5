"""Attachments travel with a queued message in its ``context`` (``context["attachments"]``, JSON: the
data in base64), so the email is built at sending time from what was decided in the sender's
transaction, like every other part of it. Templates never see them."""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from collections.abc import Mapping
from typing import Any

from leadflow.messaging.build.mime import MAX_PARTS_BYTES, Part

KEY = "attachments"


def attachment(
    content_type: str, data: bytes, *, filename: str | None = None, alternative: bool = False
) -> dict[str, Any]:
    """One attachment as a message's context holds it (checked now, so a bad one fails its sender)."""
    if len(data) > MAX_PARTS_BYTES:
        raise ValueError(f"an attachment is larger than {MAX_PARTS_BYTES:,} bytes")
    Part(content_type, data, filename, alternative).headers()
    return {
        "content_type": content_type,
        "data": b64encode(data).decode("ascii"),
        "filename": filename,
        "alternative": alternative,
    }


def parts_of(context: Mapping[str, Any] | None) -> list[Part]:
    """The parts a message's context carries (``ValueError`` when one is malformed, or when together
    they are larger than `MAX_PARTS_BYTES`)."""
    found = (context or {}).get(KEY) or []
    try:
        parts = [
            Part(
                content_type=str(item["content_type"]),
                data=b64decode(item["data"], validate=True),
                filename=item.get("filename"),
                alternative=bool(item.get("alternative")),
            )
            for item in found
        ]
    except (KeyError, TypeError, binascii.Error) as exc:
        raise ValueError(f"a malformed attachment: {exc}") from None
    if sum(len(part.data) for part in parts) > MAX_PARTS_BYTES:
        raise ValueError(f"the attachments are larger than {MAX_PARTS_BYTES:,} bytes")
    for part in parts:
        part.headers()
    return parts
