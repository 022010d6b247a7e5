"""Opaque cursors for ``{"data": [...], "next_cursor": ...}`` lists."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from leadflow.kernel import jsonutil
from leadflow.kernel.errors import BadRequest

DEFAULT_LIMIT = 50
MAX_LIMIT = 500

T = TypeVar("T")

Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="page size")
Cursor = Query(None, description="next_cursor from the previous page")


class Page(BaseModel, Generic[T]):
    """Every list answers ``{"data": [...], "next_cursor": "..." | null}``."""

    data: list[T]
    next_cursor: str | None


def paginate(
    items: list[T], limit: int, position: Callable[[T], dict[str, Any]]
) -> tuple[list[T], str | None]:
    """Given ``limit + 1`` items, the page and the cursor to the next one (None on the last page)."""
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    return items, encode(position(items[-1]))


def encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(jsonutil.dumpb(position)).decode().rstrip("=")


def _foreign() -> BadRequest:
    return BadRequest("the cursor is not one this API issued", code="invalid_cursor")


MAX_POSITION_TEXT = 1000
"""The longest text a cursor's position holds (an id, an email, an instant)."""


def decode(cursor: str | None) -> dict[str, Any] | None:
    """The position a cursor of :func:`encode` holds. A cursor is opaque but not signed: one made by hand
    whose values are not the texts and whole numbers this API puts there (a list, a float, ``true``, a
    NUL, a number past 64 bits, a text past :data:`MAX_POSITION_TEXT`) is ``400 invalid_cursor``, and
    :func:`text_at` / :func:`number_at` refuse a value of the other kind."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = jsonutil.loads(raw)
    except (binascii.Error, ValueError, jsonutil.JSONDecodeError):
        raise _foreign() from None
    if not isinstance(value, dict) or not all(_plain(item) for item in value.values()):
        raise _foreign()
    return value


def _plain(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        if len(value) > MAX_POSITION_TEXT or "\x00" in value:
            return False
        try:
            value.encode("utf-8")  # no lone surrogate
        except UnicodeEncodeError:
            return False
        return True
    return False


def text_at(cursor: str | None, key: str) -> str | None:
    """The text at ``key`` of the cursor's position (an id, an email), or None without a cursor or key."""
    value = (decode(cursor) or {}).get(key)
    if value is not None and not isinstance(value, str):
        raise _foreign()
    return value


def number_at(cursor: str | None, key: str) -> int | None:
    """The whole number at ``key`` of the cursor's position (a row id), or None without a cursor or key."""
    value = (decode(cursor) or {}).get(key)
    if value is not None and not isinstance(value, int):
        raise _foreign()
    return value


def time_position(instant: datetime, row_id: int) -> dict[str, Any]:
    """The position of a row in a list ordered by (time, id), newest first."""
    return {"t": instant.isoformat(), "id": row_id}


def decode_time(cursor: str | None) -> tuple[datetime, int] | None:
    """The (time, id) a newest-first list continues before, from a cursor of :func:`time_position`."""
    position = decode(cursor)
    if position is None:
        return None
    try:
        return datetime.fromisoformat(position["t"]), int(position["id"])
    except (KeyError, TypeError, ValueError):
        raise _foreign() from None
