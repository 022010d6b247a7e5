"""Sends queued webhooks (Standard Webhooks v1) and records what became of them.

A pass claims due rows with a lease: one short write transaction selects them (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several deliverers share the work), pushes their ``due_at`` to the end of the
lease and counts the attempt. The POSTs then run concurrently outside any transaction, and one more
write transaction records the outcomes. A crash in between leaves the rows queued until the lease ends,
when they are sent again with the same ``webhook-id``: transport is at-least-once and receivers
de-duplicate on ``webhook-id``. An outcome is only recorded if the row still carries the attempt count
of its claim, so a late answer to a claim that was taken over (the lease ran out) changes nothing.

Outcomes: 2xx → delivered; 410 → failed ("endpoint gone"); any other 4xx but 408/429 → failed at once;
a target the network guard refuses (an internal address, see :mod:`leadflow.kernel.netguard`) → failed
at once with the reason ("blocked: 127.0.0.1 is loopback; ...");
408, 429, 3xx (redirects are not followed), 5xx, timeouts and connection errors → retried after the
Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), or after ``Retry-After`` when
that is longer; when the eighth attempt fails too, the delivery fails with the last reason.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from leadflow.kernel import jsonutil, netguard, retry
from leadflow.kernel.context import AppContext
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import WorkerLoop
from leadflow.webhooks import outbox, queries
from leadflow.webhooks.outbox import DELIVERED, FAILED, QUEUED

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = timedelta(days=1)  # a receiver cannot park a delivery for longer
SCHEDULE = RetrySchedule(
    (
        timedelta(seconds=5),
        timedelta(minutes=5),
        timedelta(minutes=30),
        timedelta(hours=2),
        timedelta(hours=5),
        timedelta(hours=10),
        timedelta(hours=10),
    ),
    retry_after_cap=MAX_RETRY_AFTER,
)
BACKOFF = SCHEDULE.delays
MAX_ATTEMPTS = SCHEDULE.max_attempts  # the first attempt, then one per step of the schedule
LEASE_MARGIN = timedelta(seconds=30)
SENDERS = 8  # concurrent POSTs per pass
USER_AGENT = "leadflow-webhooks/1"
BODY_EXCERPT = 500  # characters of a failing response kept as the reason
_BODY_READ_LIMIT = 64 * 1024
MAX_PAUSE = 60.0  # seconds between tries while the database is unavailable
RETRY = "retry"


@dataclass(frozen=True)
class Claimed:
    """A delivery taken for one attempt; ``attempts`` counts this one."""

    id: str
    url: str
    event: str
    payload: Any
    created_at: datetime
    attempts: int


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: ``outcome`` is delivered, failed (for good) or retry."""

    outcome: str
    code: int | None = None
    reason: str | None = None
    retry_after: timedelta | None = None


def body_of(claimed: Claimed) -> str:
    """The request body: ``{"type", "timestamp" (ISO-8601 of when it was queued), "data"}``, compact."""
    return jsonutil.dumps({"type": claimed.event, "timestamp": claimed.created_at, "data": claimed.payload})


def request_headers(signer: Webhook, msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` sent as message ``msg_id`` at ``at``."""
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": signer.sign(msg_id, at, body),
    }


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay: delta-seconds or an HTTP date; capped at :data:`MAX_RETRY_AFTER`."""
    return retry.parse_retry_after(value, now, MAX_RETRY_AFTER)


def classify(code: int, headers: httpx.Headers, excerpt: str, now: datetime) -> Attempt:
    """The Standard Webhooks reading of a response status (see the module docstring)."""
    detail = f"HTTP {code}: {excerpt}" if excerpt else f"HTTP {code}"
    if 200 <= code < 300:
        return Attempt(DELIVERED, code)
    if code == 410:
        return Attempt(FAILED, code, "endpoint gone (410)")
    if 400 <= code < 500 and code not in (408, 429):
        return Attempt(FAILED, code, detail)
    if 300 <= code < 400:
        detail = f"HTTP {code}: redirect to {headers.get('location', '?')} not followed"
    return Attempt(RETRY, code, detail, parse_retry_after(headers.get("retry-after"), now))


def decide(claimed: Claimed, attempt: Attempt, now: datetime) -> dict[str, Any]:
    """The row's new values after ``attempt`` (``status`` is delivered, failed or queued again)."""
    values: dict[str, Any] = {"response_code": attempt.code, "error": attempt.reason, "delivered_at": None}
    if attempt.outcome == DELIVERED:
        return values | {"status": DELIVERED, "due_at": now, "delivered_at": now}
    due = None if attempt.outcome == FAILED else SCHEDULE.next_due(now, claimed.attempts, attempt.retry_after)
    if due is None:
        return values | {"status": FAILED, "due_at": now}
    return values | {"status": QUEUED, "due_at": due}


def _excerpt(response: httpx.Response) -> str:
    """The start of the response body (what a receiver explains a refusal with); never raises."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _BODY_READ_LIMIT:
                break
    except httpx.HTTPError:
        pass
    return b"".join(chunks).decode("utf-8", "replace").strip()[:BODY_EXCERPT]


class WebhookDeliverer:
    """Delivers due webhooks; :meth:`run` is the worker loop, :meth:`deliver_due` one pass."""

    def __init__(self, ctx: AppContext, *, client: httpx.Client | None = None) -> None:
        self.ctx = ctx
        self.timeout = ctx.settings.webhook_timeout
        self.lease = timedelta(seconds=self.timeout) + LEASE_MARGIN
        self._own_client = client is None
        self._client = client or netguard.client(ctx.settings, timeout=self.timeout)
        self._signer: Webhook | None = None

    def close(self) -> None:
        """Close the HTTP client if this deliverer made it."""
        if self._own_client:
            self._client.close()

    def __enter__(self) -> WebhookDeliverer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def signer(self) -> Webhook:
        """The signer for :func:`outbox.signing_secret` (read lazily, outside any transaction)."""
        if self._signer is None:
            self._signer = Webhook(outbox.signing_secret(self.ctx))
        return self._signer

    def deliver_due(self, limit: int = 100) -> int:
        """Claim up to ``limit`` due deliveries, POST them, record the outcomes; returns how many."""
        signer = self.signer()
        batch = self.claim(limit)
        if not batch:
            return 0
        workers = min(SENDERS, len(batch))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="leadflow-webhook") as pool:
            attempts = list(pool.map(lambda claimed: self._send(signer, claimed), batch))
        self._record(batch, attempts)
        return len(batch)

    def claim(self, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries: ``due_at`` moves to the lease's end, ``attempts`` + 1.

        Internal to :meth:`deliver_due` (public for tests that simulate a crash after claiming).
        """
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            rows = conn.execute(queries.claim(conn.dialect.name, now, limit)).all()
            if not rows:
                return []
            conn.execute(queries.lease([row.id for row in rows], now + self.lease))
        return [
            Claimed(row.id, row.url, row.event, row.payload, row.created_at, row.attempts + 1) for row in rows
        ]

    def _send(self, signer: Webhook, claimed: Claimed) -> Attempt:
        """POST one delivery; every error becomes an :class:`Attempt` (one bad URL must not stop a batch)."""
        now = self.ctx.clock.now()
        body = body_of(claimed)
        headers = request_headers(signer, claimed.id, now, body)
        try:
            with self._client.stream(
                "POST",
                claimed.url,
                content=body.encode(),
                headers=headers,
                timeout=self.timeout,
                follow_redirects=False,
            ) as response:
                return classify(response.status_code, response.headers, _excerpt(response), now)
        except netguard.Blocked as exc:
            return Attempt(FAILED, reason=str(exc))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            return Attempt(FAILED, reason=f"invalid URL: {exc}")
        except httpx.TimeoutException:
            return Attempt(RETRY, reason=f"no answer within {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return Attempt(RETRY, reason=f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("webhook %s to %s: unexpected error", claimed.id, claimed.url)
            return Attempt(RETRY, reason=f"unexpected error: {exc!r}")

    def _record(self, batch: list[Claimed], attempts: list[Attempt]) -> None:
        """Store every outcome in one transaction, each guarded by its claim's attempt count."""
        now = self.ctx.clock.now()
        columns = queries.RECORDED
        params: list[dict[str, Any]] = []
        statuses: list[str] = []
        for claimed, attempt in zip(batch, attempts, strict=True):
            values = decide(claimed, attempt, now)
            params.append(
                {"b_id": claimed.id, "b_attempts": claimed.attempts}
                | {f"v_{name}": values[name] for name in columns}
            )
            statuses.append(values["status"])
            self._note(claimed, values)
        with self.ctx.db.write() as conn:
            conn.execute(queries.RECORD, params)
        for status in statuses:
            self._count(status)

    def _note(self, claimed: Claimed, values: dict[str, Any]) -> None:
        if values["status"] == FAILED:
            log.warning("webhook %s to %s failed: %s", claimed.id, claimed.url, values["error"])
        elif values["status"] == QUEUED:
            log.info("webhook %s to %s will be retried: %s", claimed.id, claimed.url, values["error"])

    def _count(self, status: str) -> None:
        counters = outbox.counters(self.ctx)
        {DELIVERED: counters.delivered, FAILED: counters.failed, QUEUED: counters.retried}[status].inc()

    def next_due(self) -> datetime | None:
        """When the earliest queued delivery (or lease) falls due."""
        with self.ctx.db.read() as conn:
            due: datetime | None = conn.execute(
                queries.NEXT_DUE
            ).scalar()  # min() keeps the column's UTC type
        return due

    def _idle_wait(self, poll: float) -> float:
        due = self.next_due()
        if due is None:
            return poll
        return min(poll, max(0.0, (due - self.ctx.clock.now()).total_seconds()))

    def run(self, stop: threading.Event) -> None:
        """Loop until ``stop`` is set: deliver while work is due, else sleep until woken, the next due
        time or the poll interval. A lost database connection pauses it for a few polls; other errors
        are logged and retried with a growing pause (up to :data:`MAX_PAUSE`); the loop never ends on
        its own (:class:`~leadflow.kernel.worker_loop.WorkerLoop`)."""
        poll = self.ctx.settings.worker_poll_interval
        WorkerLoop(
            "webhook delivery",
            self.deliver_due,
            outbox.CHANNEL,
            poll=poll,
            backoff=poll,
            max_backoff=MAX_PAUSE,
            idle=lambda: self._idle_wait(poll),
            logger=log,
        ).run(self.ctx.signals, stop)
