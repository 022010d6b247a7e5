"""Queue tables kept analysed by the workers that drain them (PostgreSQL).

A backlog is queued faster than autovacuum analyses its table (it looks at a database once a minute and
analyses a table after a fifth of it changed), so for the first minutes the planner knows nothing of the
new rows. With no statistics it guesses that a few rows are due and sorts every waiting row instead of
walking the due index, on every claim (docs/benchmarks.md, "Connectors" and "Outgoing webhooks"). Each
worker asks :class:`QueueStatistics` before it claims; it looks at ``pg_stat_user_tables`` at most every
few seconds and analyses a stale table without waiting for a lock.

The scheduler's :mod:`leadflow.runtime.vacuum` is the other half: it vacuums (and analyses) a queue table
once it holds many dead rows. A fresh backlog has none yet (only inserts), which is the case here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import Database

#: A table's statistics are stale when more rows than this share of it (and than :data:`STALE_AT_LEAST`)
#: changed since PostgreSQL last analysed it.
STALE_SHARE = 0.2
STALE_AT_LEAST = 1000
_STALE = sa.text(
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
    "AND relname = ANY(CAST(:names AS text[])) "
    "AND n_mod_since_analyze > greatest(:at_least, :share * n_live_tup)"
)


def analyze_stale(conn: Connection, tables: Sequence[sa.Table]) -> list[str]:
    """``ANALYZE`` those of ``tables`` whose statistics are stale (PostgreSQL; nothing on SQLite, whose
    planner keys its choices on the indexes); the names analysed.

    The caller decides how often to ask (a statement to ``pg_stat_user_tables`` each time)."""
    if conn.dialect.name != "postgresql":
        return []
    names = [table.name for table in tables]
    found = conn.execute(_STALE, {"names": names, "at_least": STALE_AT_LEAST, "share": STALE_SHARE})
    stale = [name for (name,) in found]
    for name in stale:
        # SKIP_LOCKED: never wait behind a VACUUM (or another worker's ANALYZE) of the table
        conn.exec_driver_sql(
            f"ANALYZE (SKIP_LOCKED) {conn.dialect.identifier_preparer.quote_identifier(name)}"
        )
    return stale


class QueueStatistics:
    """A worker's queue tables kept analysed (:func:`analyze_stale`), looked at once at most every
    ``every`` seconds of ``monotonic`` (one statement to ``pg_stat_user_tables``; nothing on SQLite)."""

    def __init__(self, tables: Sequence[sa.Table], every: float = 10.0) -> None:
        self.tables = tuple(tables)
        self.every = every
        self._at = -math.inf

    def refresh(self, db: Database, now: float) -> list[str]:
        """The tables analysed now (``now``: the clock's monotonic seconds)."""
        if db.is_sqlite or now - self._at < self.every:
            return []
        self._at = now
        with db.read_one() as conn:
            return analyze_stale(conn, self.tables)
