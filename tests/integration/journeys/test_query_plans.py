"""The processing hot path reads journeys through partial indexes, never a contact's whole history.

Each processed batch asks which of its contacts' runs an event may end or convert, and which of their
steps wait for an event. Runs and steps pile up with every journey a contact goes through; a query
that cannot use the partial index reads them all (at 60,000 runs: 10 ms per batch on PostgreSQL,
growing without bound). The plans are read from the database for the very queries the engine runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Connection

from leadflow.journeys import queries
from leadflow.journeys.models import WAITING_STEP
from leadflow.kernel.context import AppContext

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def database_url(own_database_url: str) -> str:
    """A database never analysed: the plans below are those of tables the planner knows nothing of,
    whatever statistics earlier tests (or a worker's analysis of its queue) left in the shared one."""
    return own_database_url


CONTACTS = ["01JCONTACT0000000000000001", "01JCONTACT0000000000000002"]


def _plan(conn: Connection, query: Any) -> str:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # an index it can use, it will use
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
    else:
        params = tuple(compiled.params[name] for name in compiled.positiontup or ())
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled), params)
    return "\n".join(str(row[-1]) for row in rows)


def test_open_runs_are_read_through_their_partial_index(ctx: AppContext) -> None:
    with ctx.db.write() as conn:
        plan = _plan(conn, queries.open_runs(conn.dialect.name, CONTACTS, NOW))
    if ctx.db.dialect == "postgresql":
        assert "ix_journey_runs_open" in plan, plan
    else:
        assert "SCAN journey_runs" not in plan, plan
        assert "USING INDEX" in plan, plan


def test_waiting_steps_are_read_through_their_partial_index(ctx: AppContext) -> None:
    with ctx.db.write() as conn:
        plan = _plan(conn, queries.waiting_steps(conn.dialect.name, ["Order Completed"], CONTACTS))
    assert "ix_journey_steps_waiting" in plan, plan


def test_the_join_repeats_the_waiting_index_predicate_word_for_word() -> None:
    assert queries.WAITING.replace("journey_steps.", "") == WAITING_STEP
