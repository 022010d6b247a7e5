"""Several reads streamed at once (:mod:`leadflow.kernel.snapshot_reads`), on both databases: each
iterator gives its own query's rows in order across partitions, a failing read raises in the caller,
and leaving early stops the reading threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from leadflow.kernel.context import AppContext
from leadflow.kernel.snapshot_reads import streamed

NUMBERS = sa.text(
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count) "
    "SELECT i, i * :factor AS j FROM n ORDER BY i"
)


def _threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name == "leadflow-snapshot-read"]


def test_each_read_gives_its_rows_in_order_across_partitions(ctx: AppContext) -> None:
    reads = [(NUMBERS, {"count": 2_500, "factor": 2}), (NUMBERS, {"count": 1_001, "factor": 3})]
    with streamed(ctx.db, reads, batch=100) as (first, second):
        got_second = [tuple(row) for row in second]  # the second read first: neither waits on the other
        got_first = [(row.i, row.j) for row in first]
    assert got_first == [(i, 2 * i) for i in range(1, 2_501)]
    assert got_second == [(i, 3 * i) for i in range(1, 1_002)]
    assert not _threads()


def _consume_all(ctx: AppContext, reads: list[tuple[Any, dict[str, Any]]]) -> None:
    with streamed(ctx.db, reads) as (numbers, failing):
        assert len(list(numbers)) == 10
        list(failing)


def test_a_failing_read_raises_in_the_caller(ctx: AppContext) -> None:
    reads = [(NUMBERS, {"count": 10, "factor": 1}), (sa.text("SELECT * FROM no_such_table"), {})]
    with pytest.raises(DBAPIError, match="no_such_table"):
        _consume_all(ctx, reads)
    assert not _threads()


def _leave_after_one_row(ctx: AppContext, reads: list[tuple[Any, dict[str, Any]]]) -> None:
    with streamed(ctx.db, reads, batch=10) as (first, _):
        assert next(first).i == 1
        raise RuntimeError("stopped")


def test_leaving_early_stops_the_reads(ctx: AppContext) -> None:
    reads = [(NUMBERS, {"count": 50_000, "factor": 1}), (NUMBERS, {"count": 50_000, "factor": 1})]
    with pytest.raises(RuntimeError, match="stopped"):
        _leave_after_one_row(ctx, reads)
    assert not _threads()  # joined, though their queues were full and one read was never consumed
