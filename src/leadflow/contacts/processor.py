"""The processing loop: stored events → profiles → qualifiers (architecture steps 2 and 3).

A batch is claimed, applied and marked processed in one transaction holding the profile lock, so a
crash anywhere rolls the whole batch back and the next attempt re-processes it without double effects.
One processor runs at a time (the processor lock, only tried); any number of workers may try, the others
go on to other work. The one whose turn it is then waits for the profile lock behind the short profile
writes of the API and forms, so a steady stream of those cannot starve it.

An event that cannot be applied (a bug, a value the database refuses) must not stall everyone behind it:
a failing batch is retried in halves until the one failing event is alone, and that event is then marked
processed with its error kept on the row and counted in the metrics — never dropped silently.
Connection problems are not the event's fault: they propagate, and the loop retries later.

A failure that is not about one event — a bug, a broken deployment — would otherwise fail every event
one by one. So after :data:`BREAKER` events in a row failed alone, the processor stops marking: it
raises :class:`ProcessingHalted`, the loop logs it and retries with backoff, the backlog (and the lag
metric) grows visibly, and nothing more is set aside. Events already set aside are put back with
``leadflow events requeue-failed`` once the cause is fixed.
"""

from __future__ import annotations

import logging
import threading

from leadflow.contacts import writes as contacts
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched, TouchedEvent
from leadflow.kernel.worker_loop import TRANSIENT, Halted, WorkerLoop

log = logging.getLogger(__name__)

BREAKER = 5
MAX_BACKOFF = 60.0


class ProcessingHalted(Halted):
    """Several events in a row failed on their own: the cause is not the events."""


class EventProcessor:
    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.batch_size = ctx.settings.processing_batch_size
        self.failures_in_a_row = 0

    def process_next(self, limit: int | None = None) -> int:
        """Process the oldest waiting events; returns how many were handled (0: nothing to do or busy)."""
        limit = limit or self.batch_size
        try:
            handled = self._process(limit)
        except TRANSIENT:
            raise
        except Exception as exc:
            if limit > 1:
                return self.process_next(max(1, limit // 2))
            if self.failures_in_a_row >= BREAKER:
                raise ProcessingHalted(f"{BREAKER} events in a row failed; last: {exc!r}") from exc
            self._fail_oldest(exc)
            self.failures_in_a_row += 1
            return 1
        if handled:
            self.failures_in_a_row = 0
        return handled

    def _process(self, limit: int) -> int:
        ctx = self.ctx
        secret = ctx.secret_key
        with ctx.db.write() as conn:
            if not contacts.processor_lock(conn):
                return 0
            contacts.profile_lock(conn)
            rows = events.pending(conn, limit)
            if not rows:
                return 0
            applied = contacts.apply_batch(conn, ctx, rows, secret=secret)
            now = ctx.clock.now()
            events.mark_processed(conn, applied.contacts, now)
            events.delete(conn, applied.dropped)
            touched = tuple(
                TouchedEvent(
                    id=row.id,
                    contact_id=applied.contacts[row.id],
                    type=row.type,
                    event=row.event,
                    name=row.name,
                    source=row.source,
                    timestamp=row.timestamp,
                    properties=row.properties,
                )
                for row in rows
                if row.id in applied.contacts
            )
            ctx.bus.publish(
                conn, ContactsTouched(applied.flush.changes, touched, now, merged=tuple(applied.flush.merged))
            )
        ctx.metrics.events_processed.inc(len(rows))
        return len(rows)

    def _fail_oldest(self, error: Exception) -> None:
        ctx = self.ctx
        with ctx.db.write() as conn:
            contacts.profile_lock(conn)
            rows = events.pending(conn, 1)
            if not rows:
                return
            events.mark_failed(conn, rows[0].id, f"{type(error).__name__}: {error}", ctx.clock.now())
        ctx.metrics.processing_errors.inc()
        log.error("event %s could not be processed: %s", rows[0].id, error, exc_info=error)

    def drain(self) -> int:
        """Process until nothing waits (tests, the CLI, the simulator)."""
        total = 0
        while (count := self.process_next()) > 0:
            total += count
        return total

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set: process while there is work, otherwise sleep until woken; a halt
        (:class:`ProcessingHalted`) is retried after a pause that doubles up to :data:`MAX_BACKOFF`."""
        poll = self.ctx.settings.worker_poll_interval
        WorkerLoop(
            "event processing",
            self.process_next,
            events.CHANNEL,
            poll=poll,
            backoff=poll,
            max_backoff=MAX_BACKOFF,
            logger=log,
        ).run(self.ctx.signals, stop)
