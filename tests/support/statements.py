"""Counting the statements and transactions a piece of code sends to the database (load-independent
figures of a hot path: round trips)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from leadflow.kernel.context import AppContext


@dataclass
class Count:
    statements: int = 0
    transactions: int = 0

    @property
    def round_trips(self) -> int:
        """Statements, and ``BEGIN`` + ``COMMIT`` for each transaction."""
        return self.statements + 2 * self.transactions


@contextmanager
def counting(ctx: AppContext) -> Iterator[Count]:
    """Count what ``ctx``'s engine executes meanwhile (a connection in ``AUTOCOMMIT`` opens no
    transaction; SQLite's own ``BEGIN`` is counted as the transaction, not as a statement)."""
    found = Count()
    engine = ctx.db.engine

    def statement(conn: sa.Connection, cursor: Any, sql: str, *_: Any) -> None:
        if not sql.startswith("BEGIN"):
            found.statements += 1

    def begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            found.transactions += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "begin", begin)
    try:
        yield found
    finally:
        sa.event.remove(engine, "before_cursor_execute", statement)
        sa.event.remove(engine, "begin", begin)
