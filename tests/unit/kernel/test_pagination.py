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
        {"name": "Zoë ✓", "n": None, "flag": True},
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
