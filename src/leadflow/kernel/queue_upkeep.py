"""Queue tables kept lean and analysed on PostgreSQL, whatever autovacuum does: one policy, two callers.

The queue tables (:data:`QUEUES`) are queues as much as histories: a row is inserted, then updated once
or twice (claimed, processed, sent). Two things go wrong between autovacuum's visits (it looks at a
database once a minute and acts on a table once a fifth of it changed or died):

- *Dead rows.* Every update leaves a dead row version, and a dead entry in the partial index the claim
  reads (pending events, due steps, waiting messages). Until VACUUM removes them every claim reads past
  them: with autovacuum off or behind, the processor's lag at 1,000 events/s grew from 0.2 s to 9 s in
  three minutes; vacuumed every 30 s it stayed flat (docs/benchmarks.md, "From track to the SMTP server").
- *Stale statistics.* A backlog queued faster than autovacuum analyses its table leaves the planner
  thinking a few rows are due, and every ``ORDER BY due_at LIMIT n FOR UPDATE SKIP LOCKED`` claim sorts the
  whole backlog instead of walking the due index (a webhook claim over 50,000 queued rows: 23.7 ms stale,
  0.14 ms analysed; docs/benchmarks.md, "Connectors" and "Outgoing webhooks"). A fresh backlog has no dead
  rows yet, so the dead-row rule alone never catches it.

The policy: a table is *stale* when more than :data:`STALE_SHARE` of its rows (and more than
:data:`STALE_AT_LEAST`) changed since its last analysis; it is *due a vacuum* at ``min_dead`` dead rows
(``LEADFLOW_VACUUM_MIN_DEAD_ROWS``). Its callers:

- each worker, before it claims, through :class:`QueueStatistics` (its own tables; one look at
  ``pg_stat_user_tables`` every few seconds at most): a stale table is analysed at once;
- the worker's scheduler, every ``LEADFLOW_VACUUM_INTERVAL`` seconds, through :func:`upkeep_due` (every
  queue table, whichever workers run): ``VACUUM (ANALYZE)`` where due, ``ANALYZE`` where only stale,
  paced as autovacuum is (a 2 ms pause every 200 cost units) so that it does not take the cores the
  pipeline needs, one worker at a time (a session advisory lock).

Both use ``SKIP_LOCKED``, so nobody waits behind autovacuum or another worker. SQLite has nothing to do:
it reuses freed pages by itself, and its planner keys its choices on the indexes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import Database, lock_key

log = logging.getLogger(__name__)

#: The queue tables, by the worker that drains each: the processor (events), the email deliverer
#: (messages), the journey executor (journey_steps, journey_runs), the webhook deliverer
#: (webhook_deliveries) and the connector worker (connector_outbox; connector_links, rewritten with
#: every record written).
QUEUES = (
    "events",
    "messages",
    "journey_steps",
    "journey_runs",
    "webhook_deliveries",
    "connector_outbox",
    "connector_links",
)
LOCK = lock_key("leadflow:vacuum")

#: A table's statistics are stale when more rows than this share of it (and than :data:`STALE_AT_LEAST`)
#: changed since PostgreSQL last analysed it.
STALE_SHARE = 0.2
STALE_AT_LEAST = 1000

_STALE = "n_mod_since_analyze > greatest(CAST(:at_least AS bigint), CAST(:share AS float8) * n_live_tup)"
_STALE_TABLES = sa.text(
    "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() "
    f"AND relname = ANY(CAST(:names AS text[])) AND {_STALE}"
)
_UPKEEP_DUE = sa.text(
    "SELECT relname, n_dead_tup >= :dead AS vacuum FROM pg_stat_user_tables "
    "WHERE schemaname = current_schema() AND relname = ANY(CAST(:names AS text[])) "
    f"AND (n_dead_tup >= :dead OR {_STALE}) ORDER BY n_dead_tup DESC"
)


def _quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote_identifier(name)


def analyze_stale(conn: Connection, tables: Sequence[sa.Table]) -> list[str]:
    """``ANALYZE`` those of ``tables`` whose statistics are stale (PostgreSQL; nothing on SQLite); the
    names analysed. The caller decides how often to ask (a statement to ``pg_stat_user_tables`` each
    time)."""
    if conn.dialect.name != "postgresql":
        return []
    names = [table.name for table in tables]
    found = conn.execute(_STALE_TABLES, {"names": names, "at_least": STALE_AT_LEAST, "share": STALE_SHARE})
    stale = [name for (name,) in found]
    for name in stale:
        conn.exec_driver_sql(f"ANALYZE (SKIP_LOCKED) {_quoted(conn, name)}")
    return stale


def upkeep_due(db: Database, min_dead: int) -> list[str]:
    """The scheduler's pass: ``VACUUM (ANALYZE)`` each queue table with at least ``min_dead`` dead rows,
    ``ANALYZE`` each other one whose statistics are stale; the names done (none on SQLite, or while
    another worker is at it)."""
    if db.dialect != "postgresql":
        return []
    done: list[str] = []
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.exec_driver_sql("SELECT pg_try_advisory_lock(%(k)s)", {"k": LOCK}).scalar_one():
            return []
        try:
            # paced like autovacuum, so it does not take the cores the pipeline runs on
            conn.exec_driver_sql("SET vacuum_cost_delay = '2ms'")
            conn.exec_driver_sql("SET vacuum_cost_limit = 200")
            due = conn.execute(
                _UPKEEP_DUE,
                {"names": list(QUEUES), "dead": min_dead, "at_least": STALE_AT_LEAST, "share": STALE_SHARE},
            ).all()
            for name, vacuum in due:
                started = time.perf_counter()
                command = "VACUUM (ANALYZE, SKIP_LOCKED)" if vacuum else "ANALYZE (SKIP_LOCKED)"
                conn.exec_driver_sql(f"{command} {_quoted(conn, name)}")
                log.info("%s %s in %.1f s", command.split()[0].lower(), name, time.perf_counter() - started)
                done.append(name)
        finally:  # the connection goes back to the pool: leave its session as it was
            conn.exec_driver_sql("RESET vacuum_cost_delay")
            conn.exec_driver_sql("RESET vacuum_cost_limit")
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": LOCK})
    return done


class QueueStatistics:
    """A worker's queue tables kept analysed (:func:`analyze_stale`), looked at once at most every
    ``every`` seconds of ``monotonic`` (one statement to ``pg_stat_user_tables``; nothing on SQLite)."""

    def __init__(self, tables: Sequence[sa.Table], every: float = 10.0) -> None:
        unknown = {table.name for table in tables} - set(QUEUES)
        if unknown:
            raise ValueError(f"not queue tables of the upkeep policy: {sorted(unknown)}")
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
