"""What contacts reads from or hands to the domains above it goes through what the composition root
registers: topic preferences (process-wide, read with a connection only) and static lists (per context)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
from sqlalchemy.engine import Connection

from leadflow.contacts import lists, preferences
from leadflow.kernel.context import AppContext

NO_CONNECTION = cast(Connection, None)


def _context() -> AppContext:
    nothing = cast(Any, None)  # lists need none of the context's services
    return AppContext(nothing, nothing, nothing, nothing, nothing, nothing)


@pytest.fixture
def reader() -> Iterator[None]:
    """The registered preferences reader, put back afterwards (other tests' contexts wired it)."""
    kept = preferences._reader[0]
    yield
    preferences.use_preferences(kept)


def test_preferences_come_from_the_registered_reader(reader: None) -> None:
    def chosen(conn: Connection, ids: Sequence[str]) -> dict[str, dict[str, bool]]:
        return {contact_id: {"news": True} for contact_id in ids}

    preferences.use_preferences(preferences._none)
    assert preferences.preferences_of(NO_CONNECTION, ["c1"]) == {}
    preferences.use_preferences(chosen)
    assert preferences.preferences_of(NO_CONNECTION, ["c1"]) == {"c1": {"news": True}}


def test_static_lists_are_those_registered_in_the_context() -> None:
    added: list[tuple[str, list[str], str]] = []

    def add(conn: Connection, ctx: AppContext, list_id: str, ids: Sequence[str], actor: str) -> int:
        added.append((list_id, list(ids), actor))
        return len(ids)

    wired, unwired = _context(), _context()
    lists.use_static_lists(wired, lambda ctx, list_id: list_id.upper(), add)
    assert lists.static_list(wired, "l1") == "L1"
    assert lists.add_to_list(NO_CONNECTION, wired, "L1", ["c1", "c2"], "cli") == 2
    assert added == [("L1", ["c1", "c2"], "cli")]
    with pytest.raises(RuntimeError, match="not wired"):
        lists.static_list(unwired, "l1")
