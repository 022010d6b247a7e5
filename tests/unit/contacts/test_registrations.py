"""What contacts reads from or hands to the domains above it goes through what the composition root
registers: topic preferences (process-wide, read with a connection only) and static lists (per context)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, cast

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from leadflow.contacts import lists, preferences, queries
from leadflow.kernel.context import AppContext

NO_CONNECTION = cast(Connection, None)


def _context() -> AppContext:
    nothing = cast(Any, None)  # lists need none of the context's services
    return AppContext(nothing, nothing, nothing, nothing, nothing, nothing)


@pytest.fixture
def column() -> Iterator[None]:
    """The registered preferences column, put back afterwards (other tests' contexts wired it)."""
    kept = preferences._column[0]
    yield
    preferences.use_preferences(kept)


def test_preferences_come_from_the_registered_column(column: None) -> None:
    def chosen(contact_id: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        return sa.func.topics_of(contact_id)

    preferences.use_preferences(preferences._none)
    plain = str(queries.by_id().compile(dialect=sqlite.dialect()))
    assert "NULL AS preferences" in plain
    preferences.use_preferences(chosen)
    # a statement built with the old column is forgotten: the contact read now asks the new one
    assert "topics_of(contacts.id) AS preferences" in str(queries.by_id().compile(dialect=sqlite.dialect()))
    assert "topics_of" not in plain
    by_email = str(queries.by_email().compile(dialect=sqlite.dialect()))
    assert "topics_of(contacts.id) AS preferences" in by_email


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
