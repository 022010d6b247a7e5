"""Several large reads of one snapshot, streamed at once (a report that merges them, e.g. attribution).

On PostgreSQL each read runs on its own connection and thread, inside a transaction importing the
snapshot a lead transaction exported (``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``): the reads
see exactly the same data, as one transaction would, while the server executes them side by side and
the caller consumes their rows as they come. Before, two server-side cursors on one connection took
turns, and the caller waited for each query's first rows (a sort runs whole before its first row) in
series. Rows travel in partitions of ``batch`` rows through a bounded queue, so memory stays at a few
partitions per read whatever the size.

A read that fails raises its error in the caller when its rows are next asked for; leaving the block
early (the caller raised or stopped reading) stops the threads and closes their connections. SQLite has
one connection's worth of concurrency: the reads share one transaction there, as before.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.sql.expression import Executable

from leadflow.kernel import queries
from leadflow.kernel.db import Database

BATCH = 10_000
DEPTH = 4  # partitions waiting per read


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_END = object()


class _Feed(threading.Thread):
    """One read of the exported snapshot, its partitions put on a bounded queue."""

    def __init__(
        self,
        db: Database,
        snapshot: str,
        settings: Sequence[Executable],
        read: tuple[Executable, dict[str, Any]],
        batch: int,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="leadflow-snapshot-read", daemon=True)
        self.db, self.snapshot, self.settings, self.read, self.batch, self.stop = (
            db,
            snapshot,
            settings,
            read,
            batch,
            stop,
        )
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)

    def run(self) -> None:
        query, params = self.read
        try:
            with self.db.engine.connect() as conn:
                conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    conn.execute(queries.IMPORT_SNAPSHOT, {"snapshot": self.snapshot})
                    for setting in self.settings:
                        conn.execute(setting)
                    result = conn.execution_options(yield_per=self.batch).execute(query, params)
                    for part in result.partitions():
                        if not self._put(part):
                            return
        except BaseException as exc:  # handed to the caller, who raises it
            self._put(_Failed(exc))
            return
        self._put(_END)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def rows(self) -> Iterator[Any]:
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield from item


def _one_connection(conn: Any, read: tuple[Executable, dict[str, Any]], batch: int) -> Iterator[Any]:
    query, params = read
    for part in conn.execution_options(yield_per=batch).execute(query, params).partitions():
        yield from part


@contextmanager
def streamed(
    db: Database,
    reads: Sequence[tuple[Executable, dict[str, Any]]],
    *,
    settings: Sequence[Executable] = (),
    batch: int = BATCH,
) -> Iterator[list[Iterator[Any]]]:
    """The rows of each ``(query, params)`` in ``reads``, one iterator each, all of one snapshot;
    ``settings`` (``SET LOCAL`` statements) run first in each read's transaction (PostgreSQL)."""
    if db.is_sqlite:
        with db.read() as conn:
            yield [_one_connection(conn, read, batch) for read in reads]
        return
    with db.engine.connect() as lead:
        lead.execution_options(isolation_level="REPEATABLE READ")
        with lead.begin():
            snapshot = str(lead.execute(queries.EXPORT_SNAPSHOT).scalar_one())
            stop = threading.Event()
            feeds = [_Feed(db, snapshot, settings, read, batch, stop) for read in reads]
            for feed in feeds:
                feed.start()
            try:
                yield [feed.rows() for feed in feeds]
            finally:
                stop.set()
                for feed in feeds:
                    feed.join()
