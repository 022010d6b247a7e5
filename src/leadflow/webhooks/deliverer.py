"""Sends queued webhooks (Standard Webhooks v1) and records what became of them.

A pass claims due rows with a lease: one short write transaction selects them (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, so several deliverers share the work), pushes their ``due_at`` to the end of the
lease and counts the attempt. The POSTs then run concurrently outside any transaction, and one more
write transaction records the outcomes. A crash in between leaves the rows queued until the lease ends,
when they are sent again with the same ``webhook-id``: transport is at-least-once and receivers
de-duplicate on ``webhook-id``. An outcome is only recorded if the row still carries the attempt count
of its claim, so a late answer to a claim that was taken over (the lease ran out) changes nothing.
A claim is leased for one POST's timeout and :data:`LEASE_MARGIN`, and renewed for as long again each
timeout while the pass is still sending (its rows go ``SENDERS`` at a time, and a batch of slow endpoints
takes a timeout a wave): slow endpoints are not taken over (and sent twice) while still being sent, and
after a crash the rows fall due again within one lease, however many the pass held.

Outcomes: 2xx → delivered; 410 → failed ("endpoint gone"); any other 4xx but 408/429 → failed at once;
a target the network guard refuses (an internal address, see :mod:`leadflow.kernel.netguard`) → failed
at once with the reason ("blocked: 127.0.0.1 is loopback; ...");
408, 429, 3xx (redirects are not followed), 5xx, timeouts and connection errors → retried after the
Standard Webhooks schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), or after ``Retry-After`` when
that is longer; when the eighth attempt fails too, the delivery fails with the last reason.

Deliveries to a registered endpoint (:mod:`leadflow.webhooks.endpoints`) go to the endpoint's current
URL, signed with its own secret (both secrets during a rotation, space-separated). An endpoint deleted
or turned off since the delivery was queued: the delivery is ``cancelled`` with the reason. An endpoint
over its rate limit (a :class:`~leadflow.kernel.ratelimit.TokenBucket` per endpoint and deliverer): the
delivery goes back untried, due when the bucket will have a token, its attempt uncounted. A ``410``
turns the endpoint off and cancels its waiting deliveries ("endpoint gone (410)"). Every attempt's
request headers, response status, headers subset, body start (4 KB) and duration are kept as the
delivery log (:mod:`leadflow.webhooks.log`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from standardwebhooks.webhooks import Webhook

from leadflow.kernel import jsonutil, retry
from leadflow.kernel.context import AppContext
from leadflow.kernel.netguard_post import Answer, GuardedPoster, InvalidRequest, Post, PostError, Sent
from leadflow.kernel.netpolicy import Blocked, Policy
from leadflow.kernel.queue_upkeep import QueueStatistics
from leadflow.kernel.ratelimit import TokenBucket
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import WorkerLoop
from leadflow.webhooks import endpoints, outbox, queries
from leadflow.webhooks.models import webhook_deliveries
from leadflow.webhooks.outbox import CANCELLED, DELIVERED, FAILED, QUEUED

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
SENDERS = 16  # concurrent POSTs per pass
MAX_SIGNERS = 1000  # signers kept between passes (one per endpoint secret)
USER_AGENT = "leadflow-webhooks/1"
BODY_EXCERPT = 500  # characters of a failing response kept as the reason
LOGGED_BODY = 4096  # characters of a response kept in the delivery log
LOGGED_HEADERS = ("content-type", "content-length", "location", "retry-after", "date", "server")
GONE = "endpoint gone (410)"
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
    endpoint_id: str | None = None


@dataclass(frozen=True)
class Target:
    """Where and how one claimed delivery goes: ``secrets`` sign it (none: the installation's)."""

    url: str
    secrets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Attempt:
    """What one POST came to: ``outcome`` is delivered, failed (for good), retry or cancelled."""

    outcome: str
    code: int | None = None
    reason: str | None = None
    retry_after: timedelta | None = None
    request_headers: dict[str, str] | None = None
    response_headers: dict[str, str] | None = None
    response_body: str | None = None
    duration_ms: int | None = None


def body_of(claimed: Claimed) -> str:
    """The request body: ``{"type", "timestamp" (ISO-8601 of when it was queued), "data"}``, compact."""
    return jsonutil.dumps({"type": claimed.event, "timestamp": claimed.created_at, "data": claimed.payload})


def request_headers(signer: Webhook | list[Webhook], msg_id: str, at: datetime, body: str) -> dict[str, str]:
    """The Standard Webhooks headers for ``body`` sent as message ``msg_id`` at ``at``; several signers
    (a rotation) give space-separated signatures."""
    signers = signer if isinstance(signer, list) else [signer]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(math.floor(at.timestamp())),
        "webhook-signature": " ".join(one.sign(msg_id, at, body) for one in signers),
    }


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay: delta-seconds or an HTTP date; capped at :data:`MAX_RETRY_AFTER`."""
    return retry.parse_retry_after(value, now, MAX_RETRY_AFTER)


def classify(code: int, headers: Mapping[str, str], excerpt: str, now: datetime) -> Attempt:
    """The Standard Webhooks reading of a response status (see the module docstring); ``headers``' names
    in lower case."""
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
    values: dict[str, Any] = {
        "response_code": attempt.code,
        "error": attempt.reason,
        "delivered_at": None,
        "request_headers": attempt.request_headers,
        "response_headers": attempt.response_headers,
        "response_body": attempt.response_body,
        "duration_ms": attempt.duration_ms,
    }
    if attempt.outcome == DELIVERED:
        return values | {"status": DELIVERED, "due_at": now, "delivered_at": now}
    if attempt.outcome == CANCELLED:
        return values | {"status": CANCELLED, "due_at": now}
    due = None if attempt.outcome == FAILED else SCHEDULE.next_due(now, claimed.attempts, attempt.retry_after)
    if due is None:
        return values | {"status": FAILED, "due_at": now}
    return values | {"status": QUEUED, "due_at": due}


def _text(data: bytes) -> str:
    """A receiver's bytes as text a database column can hold: invalid UTF-8 and NUL replaced."""
    return data.decode("utf-8", "replace").replace("\x00", "\ufffd")


def _logged(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: _text(headers[name].encode("latin-1")) for name in LOGGED_HEADERS if name in headers}


class WebhookDeliverer:
    """Delivers due webhooks; :meth:`run` is the worker loop, :meth:`deliver_due` one pass."""

    def __init__(self, ctx: AppContext, *, poster: GuardedPoster | None = None) -> None:
        self.ctx = ctx
        self.timeout = ctx.settings.webhook_timeout
        self.lease = timedelta(seconds=self.timeout) + LEASE_MARGIN
        self._own_poster = poster is None
        self._poster = poster or GuardedPoster(Policy.parse(ctx.settings.network_allow), concurrency=SENDERS)
        self._signer: Webhook | None = None
        self._signers: dict[str, Webhook] = {}
        self._buckets: dict[str, TokenBucket] = {}
        # a backlog queued faster than autovacuum analyses it: the claim sorted all of it every pass
        self._statistics = QueueStatistics((webhook_deliveries,))

    def close(self) -> None:
        """Close the sender (its loop and kept connections) if this deliverer made it."""
        if self._own_poster:
            self._poster.close()

    def __enter__(self) -> WebhookDeliverer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def signer(self) -> Webhook:
        """The signer for :func:`outbox.signing_secret` (read lazily, outside any transaction)."""
        if self._signer is None:
            self._signer = Webhook(outbox.signing_secret(self.ctx))
        return self._signer

    def _signers_of(self, target: Target) -> list[Webhook]:
        if not target.secrets:
            return [self.signer()]
        found = []
        for secret in target.secrets:
            if secret not in self._signers:
                if len(self._signers) >= MAX_SIGNERS:  # rotations leave old secrets behind
                    self._signers.clear()
                self._signers[secret] = Webhook(secret)
            found.append(self._signers[secret])
        return found

    def deliver_due(self, limit: int = 200) -> int:
        """Claim up to ``limit`` due deliveries, POST them, record the outcomes; returns how many."""
        self.signer()
        secret_key = self.ctx.secret_key  # both read outside any transaction
        self._statistics.refresh(self.ctx.db, self.ctx.clock.monotonic())
        batch = self.claim(limit)
        if not batch:
            return 0
        targets, settled, deferred = self._plan(batch, secret_key)
        sending = [claimed for claimed in batch if claimed.id in targets]
        attempts: dict[str, Attempt] = dict(settled)
        if sending:
            attempts.update(
                zip((claimed.id for claimed in sending), self._send(sending, targets, batch), strict=True)
            )
        done = [claimed for claimed in batch if claimed.id in attempts]
        self._record(done, [attempts[claimed.id] for claimed in done], deferred)
        return len(batch)

    def _plan(
        self, batch: list[Claimed], secret_key: str
    ) -> tuple[dict[str, Target], dict[str, Attempt], dict[str, tuple[datetime, int]]]:
        """Where each claimed delivery goes; which are cancelled (endpoint gone or off) and which wait
        for their endpoint's rate limit (id → when due again)."""
        now = self.ctx.clock.now()
        ids = [claimed.endpoint_id for claimed in batch if claimed.endpoint_id is not None]
        with self.ctx.db.read() as conn:
            found = endpoints.of_ids(conn, ids)
        targets: dict[str, Target] = {}
        settled: dict[str, Attempt] = {}
        deferred: dict[str, tuple[datetime, int]] = {}
        waiting: Tally[str] = Tally()
        known: dict[str, Target] = {}
        for claimed in batch:
            if claimed.endpoint_id is None:
                targets[claimed.id] = Target(claimed.url)
                continue
            endpoint = found.get(claimed.endpoint_id)
            if endpoint is None or not endpoint.active:
                reason = (
                    endpoints.DELETED if endpoint is None else endpoint.disabled_reason or endpoints.INACTIVE
                )
                settled[claimed.id] = Attempt(CANCELLED, reason=reason)
                continue
            if endpoint.rate_limit and not self._take(endpoint.id, float(endpoint.rate_limit)):
                waiting[endpoint.id] += 1
                wait = self._buckets[endpoint.id].wait(float(waiting[endpoint.id]))
                deferred[claimed.id] = (now + timedelta(seconds=wait), claimed.attempts)
                continue
            target = known.get(endpoint.id)
            if target is None:  # one derivation of its secrets a pass, whatever its deliveries
                target = known[endpoint.id] = Target(
                    endpoint.url, tuple(endpoints.secrets_of(secret_key, endpoint, now))
                )
            targets[claimed.id] = target
        return targets, settled, deferred

    def _take(self, endpoint_id: str, rate: float) -> bool:
        """Spend a token of the endpoint's bucket (one second's worth of burst), if there is one."""
        now = self.ctx.clock.monotonic()
        bucket = self._buckets.get(endpoint_id)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[endpoint_id] = TokenBucket(rate, max(1.0, rate), now)
        bucket.refill(now)
        if not bucket.ready():
            return False
        bucket.tokens -= 1
        return True

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
            Claimed(
                row.id, row.url, row.event, row.payload, row.created_at, row.attempts + 1, row.endpoint_id
            )
            for row in rows
        ]

    def _send(
        self, sending: list[Claimed], targets: dict[str, Target], held: Sequence[Claimed]
    ) -> list[Attempt]:
        """POST the batch, :data:`SENDERS` at a time, renewing the pass's claim (``held``: its rows sent
        or not) each timeout until done; every error becomes an :class:`Attempt` (one bad URL must not
        stop a batch)."""
        now = self.ctx.clock.now()
        posts: list[Post] = []
        signed: list[dict[str, str]] = []
        for claimed in sending:
            target = targets[claimed.id]
            body = body_of(claimed)
            headers = request_headers(self._signers_of(target), claimed.id, now, body)
            posts.append(Post(target.url, list(headers.items()), body.encode()))
            signed.append(headers)
        sending_now = self._poster.start(posts, self.timeout)
        while True:
            try:
                sent = sending_now.result(timeout=self.timeout)
                break
            except FutureTimeout:  # a wave of slow endpoints: hold the claim a while longer
                try:
                    self.renew(held)
                except SQLAlchemyError as exc:  # the outcomes are still recorded if the claim holds
                    log.warning("webhook claims not renewed (%s): they may be sent again", type(exc).__name__)
        return [
            replace(
                self._attempt(claimed, one, now),
                request_headers=headers,
                duration_ms=round(one.seconds * 1000),
            )
            for claimed, one, headers in zip(sending, sent, signed, strict=True)
        ]

    def renew(self, claims: Sequence[Claimed]) -> None:
        """Hold these claims one :attr:`lease` from now (each as long as its claim is still current)."""
        until = self.ctx.clock.now() + self.lease
        by_attempts: dict[int, list[str]] = {}
        for claimed in claims:
            by_attempts.setdefault(claimed.attempts, []).append(claimed.id)
        with self.ctx.db.write() as conn:
            for attempts, ids in by_attempts.items():
                conn.execute(queries.renew(ids, attempts, until))

    def _attempt(self, claimed: Claimed, sent: Sent, now: datetime) -> Attempt:
        result = sent.result
        if isinstance(result, Answer):
            text = _text(result.body)
            attempt = classify(result.status, result.headers, text.strip()[:BODY_EXCERPT], now)
            return replace(
                attempt, response_headers=_logged(result.headers), response_body=text[:LOGGED_BODY]
            )
        if isinstance(result, (Blocked, InvalidRequest)):  # refused before sending: never tried again
            return Attempt(FAILED, reason=str(result))
        if isinstance(result, PostError):  # a timeout, no connection, a broken answer: tried again
            return Attempt(RETRY, reason=str(result))
        log.error("webhook %s to %s: unexpected error", claimed.id, claimed.url, exc_info=result)
        return Attempt(RETRY, reason=f"unexpected error: {result!r}")

    def _record(
        self,
        batch: list[Claimed],
        attempts: list[Attempt],
        deferred: dict[str, tuple[datetime, int]] | None = None,
    ) -> None:
        """Store every outcome in one transaction, each guarded by its claim's attempt count; a ``410``
        from an endpoint turns it off."""
        now = self.ctx.clock.now()
        rows: list[dict[str, Any]] = []  # id, attempts (the claim's guard) and the recorded columns
        statuses: list[str] = []
        gone: set[str] = set()
        for claimed, attempt in zip(batch, attempts, strict=True):
            values = decide(claimed, attempt, now)
            rows.append({"id": claimed.id, "attempts": claimed.attempts} | values)
            statuses.append(values["status"])
            self._note(claimed, values)
            if attempt.code == 410 and claimed.endpoint_id is not None:
                gone.add(claimed.endpoint_id)
        rows.sort(key=lambda row: str(row["id"]))  # locked in id order, as every writer of these rows
        later = [
            {"b_id": key, "b_attempts": n, "v_due_at": due} for key, (due, n) in (deferred or {}).items()
        ]
        with self.ctx.db.write() as conn:
            if rows and conn.dialect.name == "postgresql":  # one statement for the pass
                conn.execute(queries.RECORD_JSON, {"rows": jsonutil.dumps(rows)})
            elif rows:
                params = [
                    {"b_id": row["id"], "b_attempts": row["attempts"]}
                    | {f"v_{name}": row[name] for name in queries.RECORDED}
                    for row in rows
                ]
                conn.execute(queries.RECORD, params)
            if later:
                conn.execute(queries.DEFER, later)
            for endpoint_id in sorted(gone):
                endpoints.disable(conn, self.ctx, endpoint_id, GONE)
        for status in statuses:
            self._count(status)

    def _note(self, claimed: Claimed, values: dict[str, Any]) -> None:
        if values["status"] == FAILED:
            log.warning("webhook %s to %s failed: %s", claimed.id, claimed.url, values["error"])
        elif values["status"] == QUEUED:
            log.info("webhook %s to %s will be retried: %s", claimed.id, claimed.url, values["error"])

    def _count(self, status: str) -> None:
        counters = outbox.counters(self.ctx)
        if status == CANCELLED:
            return
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
        """Loop until ``stop`` is set, then close the sender: deliver while work is due, else sleep until
        woken, the next due time or the poll interval. A lost database connection pauses it for a few
        polls; other errors are logged and retried with a growing pause (up to :data:`MAX_PAUSE`); the
        loop never ends on its own (:class:`~leadflow.kernel.worker_loop.WorkerLoop`)."""
        poll = self.ctx.settings.worker_poll_interval
        try:
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
        finally:  # the sender's loop thread and kept connections go with the loop
            self.close()
