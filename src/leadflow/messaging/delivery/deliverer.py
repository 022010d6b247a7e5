"""The email deliverer: drains the outbox through the transport, and records every outcome.

1. **Claim** (a short transaction): due ``queued``/``deferred`` rows are locked (``SKIP LOCKED`` on
   PostgreSQL, so several workers share the load) and leased: ``due_at`` moves to the end of the lease.
2. **Compose and send**, outside any transaction (SQLite's single writer is never held during SMTP).
3. **Record** (a short transaction): ``sent`` / ``deferred`` (retried with backoff) / ``bounced`` (and a
   hard-bounce suppression) / ``failed`` / ``suppressed``, each also an event in the pipeline — only
   while the claim's lease holds; after a send slower than the lease, see :func:`_applicable`.

A crash after the SMTP server accepted a message but before step 3 leaves the row leased; when the
lease ends it is sent again, byte for byte the same, with the same ``Message-ID`` — at-least-once
transport, which receivers (and our SMTP peer in the crash test) de-duplicate by ``Message-ID``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.db import bulk_update
from leadflow.kernel.facts import AddressesSuppressed
from leadflow.kernel.queue_upkeep import QueueStatistics
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import WorkerLoop
from leadflow.messaging.build.compose import Composer, Verdict
from leadflow.messaging.delivery import outbox, queries
from leadflow.messaging.delivery.throttle import Throttle
from leadflow.messaging.delivery.transport.base import EmailTransport, Outcome
from leadflow.messaging.delivery.transport.factory import build_transport
from leadflow.messaging.delivery.transport.file import FileTransport
from leadflow.messaging.erased import ERASED
from leadflow.messaging.models import messages

log = logging.getLogger(__name__)

SCHEDULE = RetrySchedule(
    (
        timedelta(minutes=1),
        timedelta(minutes=5),
        timedelta(minutes=15),
        timedelta(hours=1),
        timedelta(hours=3),
        timedelta(hours=6),
        timedelta(hours=12),
    )
)
WAITING = ("queued", "deferred")
DELIVERED = ("sent", "bounced")  # the SMTP server's final word on a message that left
Pairing = tuple[Verdict, dict[str, Any]]


class Deliverer:
    def __init__(
        self, ctx: AppContext, transport: EmailTransport | None = None, *, share: Deliverer | None = None
    ) -> None:
        """``share``: another deliverer of this process whose transport (connection pool) and rate budget
        this one uses too — a second thread composing and recording while the first waits on SMTP."""
        self.ctx = ctx
        self.composer = Composer(ctx)
        # a burst queued faster than autovacuum analyses the table: the claim sorted all of it each batch
        self._statistics = QueueStatistics((messages,))
        self.transport: EmailTransport
        self.throttle: Throttle | None
        if share is not None:
            self.transport, self.throttle = transport or share.transport, share.throttle
            return
        self.transport = transport or build_transport(ctx.settings)
        settings = ctx.settings
        self.throttle = (
            Throttle(settings.email_rate_per_minute, settings.email_domain_rate_per_minute, ctx.clock)
            if settings.email_rate_per_minute or settings.email_domain_rate_per_minute
            else None
        )

    def deliver_due(self, limit: int | None = None) -> int:
        """Send one batch of due messages; returns how many rows were handled (0: none due)."""
        now = self.ctx.clock.now()
        self._statistics.refresh(self.ctx.db, self.ctx.clock.monotonic())
        batch = self.claim(now, limit or self.ctx.settings.email_batch_size)
        if not batch:
            return 0
        with self.ctx.db.read() as conn:
            verdicts = self.composer.compose(conn, batch, now)
        verdicts, later = self._throttled(verdicts)
        sending = [v for v in verdicts if v.outgoing is not None]
        results = self.transport.send_many([v.outgoing for v in sending if v.outgoing is not None])
        self.record(verdicts, dict(zip([v.message.id for v in sending], results, strict=True)), later)
        return len(batch)

    def claim(self, now: datetime, limit: int) -> list[Any]:
        with self.ctx.db.write() as conn:
            rows = list(conn.execute(queries.claim(conn.dialect.name, now, limit)))
            if rows:
                lease_end = now + timedelta(seconds=self.ctx.settings.email_lease_seconds)
                lease = [{"id": r.id, "due_at": lease_end, "attempts": r.attempts + 1} for r in rows]
                bulk_update(conn, messages, "id", lease)
        return rows

    def _throttled(self, verdicts: list[Verdict]) -> tuple[list[Verdict], list[Verdict]]:
        """Rate limits (per minute, per recipient domain): what may not go yet is put back, unchanged."""
        if self.throttle is None:
            return verdicts, []
        sending = [v for v in verdicts if v.outgoing is not None]
        allowed, _ = self.throttle.take(
            [v.outgoing.recipient.rpartition("@")[2] for v in sending if v.outgoing]
        )
        keep = {id(sending[i]) for i in allowed}
        later = [v for v in sending if id(v) not in keep]
        return [v for v in verdicts if v.outgoing is None or id(v) in keep], later

    def record(
        self, verdicts: Sequence[Verdict], results: dict[str, Outcome], later: Sequence[Verdict]
    ) -> None:
        now = self.ctx.clock.now()
        outcomes = [(v, _update(v, results.get(v.message.id), now)) for v in verdicts]
        outcomes += [
            (v, _base(v, "queued", now, due_at=now + timedelta(seconds=5), attempts=v.message.attempts))
            for v in later
        ]
        with self.ctx.db.write() as conn:
            held, delivered, erased = _applicable(conn, outcomes)
            bulk_update(conn, messages, "id", [row for _, row in held])
            bulk_update(conn, messages, "id", [_outcome_only(row) for _, row in delivered])
            applied = held + delivered
            bounced = [_suppression(v, row, now) for v, row in applied if row["status"] == "bounced"]
            if bounced:
                conn.execute(queries.suppress(conn.dialect.name), bounced)
                emails = tuple(sorted({entry["email"] for entry in bounced if entry["email"]}))
                self.ctx.bus.publish(conn, AddressesSuppressed(emails, now))
            changed = [({**v.message._mapping, "error": row["error"]}, row["status"]) for v, row in applied]
            outbox.emit(conn, self.ctx, [(row, status) for row, status in changed if status != "queued"], now)
        for _, status in changed:
            self.ctx.metrics.emails.labels(status).inc()
        if erased and isinstance(self.transport, FileTransport):  # written after the erasure removed files
            for message_id in erased:
                self.transport.path_for(message_id).unlink(missing_ok=True)

    def run(self, stop: threading.Event) -> None:
        """The worker loop: deliver while anything is due, then sleep until woken."""
        WorkerLoop(
            "email delivery",
            self.deliver_due,
            outbox.CHANNEL,
            poll=self.ctx.settings.worker_poll_interval,
            backoff=0.5,
            max_backoff=30.0,
            logger=log,
        ).run(self.ctx.signals, stop)

    def close(self) -> None:
        self.transport.close()


def _applicable(conn: Connection, outcomes: list[Pairing]) -> tuple[list[Pairing], list[Pairing], list[str]]:
    """Which outcomes may be written: ``(held, delivered, erased)``, the last the ids of messages whose
    person was erased while they were being sent.

    *Held*: the message still carries this claim's lease (still waiting, ``attempts`` as the claim set
    it); the outcome is written whole. A send slower than ``email_lease_seconds`` lets the lease end and
    another worker claim the message again (or a cancel suppress it); then only the SMTP server's final
    word about a message that left (*delivered*: ``sent`` or ``bounced``) is still written, unless the
    row already has one, or its person was erased meanwhile (the address, subject and answer would come
    back), and without touching the newer claim's lease. Any other outcome of a lost lease
    (a deferral, a compose failure, a throttled hand-back) is dropped and logged: the newer claim decides.
    The rows are locked (in id order) while this is decided, so two deliverers never both write.
    """
    if not outcomes:
        return [], [], []
    query = queries.current(conn.dialect.name, [verdict.message.id for verdict, _ in outcomes])
    current = {row.id: row for row in conn.execute(query)}
    held: list[Pairing] = []
    delivered: list[Pairing] = []
    erased: list[str] = []
    for verdict, row in outcomes:
        now = current.get(verdict.message.id)
        if now is not None and now.status in WAITING and now.attempts == verdict.message.attempts + 1:
            held.append((verdict, row))
        elif now is not None and now.error == ERASED:  # nothing of the person is written back
            erased.append(now.id)
        elif now is not None and row["status"] in DELIVERED and now.status not in DELIVERED:
            delivered.append((verdict, row))
        else:
            log.warning(
                "message %s: outcome %r not recorded: its lease ended and it is now %s",
                verdict.message.id,
                row["status"],
                "deleted" if now is None else f"{now.status} (attempt {now.attempts})",
            )
    return held, delivered, erased


def _outcome_only(row: dict[str, Any]) -> dict[str, Any]:
    """A delivered outcome without the lease columns (``due_at``, ``attempts``) of a newer claim."""
    return {name: value for name, value in row.items() if name not in ("due_at", "attempts")}


def _suppression(verdict: Verdict, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A hard bounce suppresses the address."""
    return {
        "email": (verdict.recipient or "").lower(),
        "reason": "hard_bounce",
        "detail": row["error"],
        "message_id": verdict.message.id,
        "created_at": now,
    }


def _base(verdict: Verdict, status: str, now: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "id": verdict.message.id,
        "status": status,
        "due_at": verdict.message.due_at,
        "attempts": verdict.message.attempts + 1,
        "recipient": verdict.recipient,
        "subject": verdict.subject,
        "error": None,
        "response": None,
        "sent_at": None,
    }
    row.update(values)
    return row


def _update(verdict: Verdict, result: Outcome | None, now: datetime) -> dict[str, Any]:
    """The row's next state. A deferral is retried on :data:`SCHEDULE`; after the last, it has failed."""
    if verdict.outgoing is None or result is None:
        return _base(verdict, verdict.status or "failed", now, error=verdict.reason)
    if result.status == "sent":
        return _base(verdict, "sent", now, sent_at=now, response=result.response[:500])
    if result.status == "bounced":
        return _base(
            verdict,
            "bounced",
            now,
            error=f"{result.code} {result.response}"[:1000],
            response=result.response[:500],
        )
    attempts = verdict.message.attempts + 1
    due = SCHEDULE.next_due(now, attempts)
    if due is None:
        return _base(
            verdict, "failed", now, error=f"gave up after {attempts} attempts: {result.response}"[:1000]
        )
    return _base(
        verdict,
        "deferred",
        now,
        due_at=due,
        error=result.response[:1000],
        response=result.response[:500],
    )


#: The process's deliverer (a test may put its own in, with a capturing transport).
DELIVERER: Slot[Deliverer] = Slot("messaging.deliverer", Deliverer)


def deliverer(ctx: AppContext) -> Deliverer:
    """The process's deliverer (one transport and connection pool per process)."""
    return ctx.get(DELIVERER)
