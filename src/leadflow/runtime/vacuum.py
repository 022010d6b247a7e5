"""Keeping PostgreSQL's queue tables lean, whatever autovacuum does.

``events``, ``messages``, ``journey_steps``, ``journey_runs`` and ``webhook_deliveries`` are queues as
much as histories: each row is inserted, then updated once or twice (processed, claimed, sent). Every
update leaves a dead row version, and dead entries in the partial indexes the claim queries read
(pending events, due steps, waiting messages). Until VACUUM removes them every claim reads past them,
and until ANALYZE runs the planner believes the tables are empty and chooses bitmap scans that visit
every dead row. With autovacuum off (as on the benchmark machine), or behind its default thresholds (a
table is vacuumed once a fifth of it died), the processor's lag at 1,000 track events/s grew from 0.2 s
to 9 s within three minutes; vacuumed every 30 seconds it stayed flat.

So the worker's scheduler vacuums and analyses, every ``LEADFLOW_VACUUM_INTERVAL`` seconds, each queue
table with at least ``LEADFLOW_VACUUM_MIN_DEAD_ROWS`` dead rows, paced as autovacuum is (a 2 ms pause
every 200 cost units) so that it does not take the cores the pipeline needs. One worker at a time (a
session advisory lock), ``SKIP_LOCKED`` so it never waits behind autovacuum. SQLite reuses freed pages by
itself.
"""

from __future__ import annotations

import logging
import time

from leadflow.kernel.db import Database, lock_key

log = logging.getLogger(__name__)

QUEUES = ("events", "messages", "journey_steps", "journey_runs", "webhook_deliveries")
LOCK = lock_key("leadflow:vacuum")


def vacuum_due(db: Database, min_dead: int) -> list[str]:
    """Vacuum and analyse the queue tables with at least ``min_dead`` dead rows; returns their names
    (none on SQLite, or while another worker is at it)."""
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
            due = conn.exec_driver_sql(
                "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema()"
                " AND relname = ANY(%(names)s) AND n_dead_tup >= %(dead)s ORDER BY n_dead_tup DESC",
                {"names": list(QUEUES), "dead": min_dead},
            ).scalars()
            for name in list(due):
                started = time.perf_counter()
                table = conn.dialect.identifier_preparer.quote(name)
                conn.exec_driver_sql(f"VACUUM (ANALYZE, SKIP_LOCKED) {table}")
                log.info("vacuumed %s in %.1f s", name, time.perf_counter() - started)
                done.append(name)
        finally:  # the connection goes back to the pool: leave its session as it was
            conn.exec_driver_sql("RESET vacuum_cost_delay")
            conn.exec_driver_sql("RESET vacuum_cost_limit")
            conn.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": LOCK})
    return done
