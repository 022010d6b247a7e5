"""Opaque cursors and ``limit + 1`` pagination."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from leadflow.kernel import pagination
from leadflow.kernel.errors import BadRequest


@pytest.mark.parametrize(
    "position",
    [
        {"id": "01HZX"},
        {"created_at": "2026-03-02T09:00:00Z", "id": 42},
        {"name": "Zoë ✓", "n": -(2**63), "m": 2**63 - 1, "long": "x" * pagination.MAX_POSITION_TEXT},
        {},
    ],
)
def test_cursor_round_trip(position: dict[str, Any]) -> None:
    cursor = pagination.encode(position)
    assert pagination.decode(cursor) == position


def test_cursor_is_url_safe_without_padding() -> None:
    cursor = pagination.encode({"id": "a?b/c+d", "k": "ÿÿÿ"})
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@pytest.mark.parametrize("cursor", [None, ""])
def test_no_cursor_means_first_page(cursor: str | None) -> None:
    assert pagination.decode(cursor) is None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "a",
        "%%%%",
        "é",
        _b64(b"not json"),
        _b64(b"\xff\xfe"),
        _b64(b"[1, 2]"),
        _b64(b'"text"'),
        _b64(b"42"),
        _b64(b"null"),
    ],
)
def test_garbage_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(BadRequest, match="not one this API issued") as info:
        pagination.decode(cursor)
    assert info.value.code == "invalid_cursor"


def position(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item["id"]}


def test_paginate_with_limit_plus_one_items_gives_a_cursor_to_the_last_shown() -> None:
    items = [{"id": i} for i in range(4)]
    page, cursor = pagination.paginate(items, 3, position)
    assert page == items[:3]
    assert cursor is not None
    assert pagination.decode(cursor) == {"id": 2}


@pytest.mark.parametrize("count", [0, 1, 3])
def test_paginate_last_page_has_no_cursor(count: int) -> None:
    items = [{"id": i} for i in range(count)]
    page, cursor = pagination.paginate(items, 3, position)
    assert page == items
    assert cursor is None


def test_page_model() -> None:
    page = pagination.Page[int](data=[1, 2], next_cursor=None)
    assert page.model_dump() == {"data": [1, 2], "next_cursor": None}


@pytest.mark.parametrize(
    "value", [None, True, False, 1.5, 2**63, -(2**63) - 1, [], ["a"], {}, {"a": 1}, "a\x00b", "x" * 1001]
)
def test_a_position_holds_only_texts_and_64_bit_whole_numbers(value: Any) -> None:
    """What the API puts in a cursor; a cursor made by hand with anything else is refused."""
    import json

    with pytest.raises(BadRequest, match="not one this API issued"):
        pagination.decode(_b64(json.dumps({"after": "ok", "id": value}).encode()))


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(BadRequest, match="not one this API issued"):
        pagination.decode(_b64(b'{"after": "\\ud800"}'))


def test_text_at_and_number_at_refuse_the_other_kind() -> None:
    cursor = pagination.encode({"after": "C1", "before": 7})
    assert (pagination.text_at(cursor, "after"), pagination.number_at(cursor, "before")) == ("C1", 7)
    assert pagination.text_at(cursor, "missing") is None
    assert pagination.text_at(None, "after") is None
    with pytest.raises(BadRequest, match="not one this API issued"):
        pagination.number_at(cursor, "after")
    with pytest.raises(BadRequest, match="not one this API issued"):
        pagination.text_at(cursor, "before")
