"""Token buckets: the one rate-limiting mechanism (API keys here, email budgets in messaging's throttle,
the connectors' vendor limits), and :class:`WindowLog` for a vendor whose limit is counted in fixed
windows.

A bucket holds at most ``size`` tokens and earns ``rate`` tokens per second, continuously, on the
injected clock's :meth:`~leadflow.kernel.clock.Clock.monotonic` seconds: after a quiet period a whole
bucket may be spent at once (the burst), after that work flows at the steady rate. Time that goes back
(a virtual clock set back) earns nothing until it has caught up again: time already counted is not
counted twice.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.errors import RateLimited

EPSILON = 1e-9  # float refill arithmetic must not hold back a token that is due


class TokenBucket:
    """One bucket; not thread-safe on its own (its owner holds a lock around a whole decision)."""

    __slots__ = ("rate", "size", "stamp", "tokens")

    def __init__(self, rate: float, size: float, now: float) -> None:
        self.rate = rate  # tokens per second
        self.size = size
        self.tokens = size
        self.stamp = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last refill (``now``: the clock's monotonic seconds)."""
        if now <= self.stamp:
            return
        self.tokens = min(self.size, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self, cost: float = 1.0) -> bool:
        """Whether ``cost`` tokens are there (spend them with ``tokens -= cost``)."""
        return self.tokens + EPSILON >= cost

    def wait(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` tokens are there."""
        return 0.0 if self.ready(cost) else (cost - self.tokens) / self.rate

    def full(self) -> bool:
        """Whether the bucket is whole again (a fresh bucket would be the same)."""
        return self.tokens + EPSILON >= self.size

    def block(self, seconds: float | None = None) -> None:
        """Spend everything (a ``429``): earned back at the rate from now (``seconds`` is not used)."""
        self.tokens = 0.0


class RateLimiter:
    """A bucket per caller: a steady ``rate`` per second with bursts up to ``burst`` (twice the rate,
    at least one); a rate of 0 or less turns limiting off. Thread-safe.

    Callers are open-ended (an IP address, an email typed on a sign-in page): when the buckets number
    more than ``keep`` (and twice as many as after the last sweep), the full ones are dropped — a full
    bucket limits nothing that a fresh one would not — so memory follows the callers active in the last
    ``burst / rate`` seconds, not every caller ever seen."""

    def __init__(
        self, rate: float, *, burst: float | None = None, clock: Clock | None = None, keep: int = 10_000
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 2)
        self._clock = clock or SystemClock()
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self._sweep_above = keep

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, caller: str, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise :class:`RateLimited` with the seconds to wait."""
        if self.rate <= 0:
            return
        now = self._clock.monotonic()
        with self._lock:
            bucket = self._buckets.get(caller)
            if bucket is None:
                if len(self._buckets) >= self._sweep_above:
                    self._sweep(now)
                bucket = self._buckets[caller] = TokenBucket(self.rate, self.burst, now)
            else:
                bucket.refill(now)
            if not bucket.ready(cost):
                wait = max(1, math.ceil(bucket.wait(cost)))
                raise RateLimited(f"rate limit of {self.rate:g} requests/s exceeded", retry_after=wait)
            bucket.tokens -= cost

    def _sweep(self, now: float) -> None:
        """Drop the full buckets (under the lock); the next sweep waits until the survivors double."""
        for caller, bucket in list(self._buckets.items()):
            bucket.refill(now)
            if bucket.full():
                del self._buckets[caller]
        self._sweep_above = max(self._sweep_above, 2 * len(self._buckets))


class WindowLog:
    """At most ``size`` requests in any ``span`` seconds: a log of when the last ones were spent, for a
    vendor that counts its limit in **fixed windows** (HubSpot: 100 requests per 10 s). A token bucket
    safe against such a window (``size`` at once, then ``rate``) lets up to twice the limit into one
    window: its burst, then a window's worth of refill. The log spends the whole window and never more,
    whether the vendor's window is fixed (anywhere) or rolling, as any window of ``span`` seconds holds
    at most ``size`` of its times (``span``: the vendor's window and a margin for the request's way
    there).

    The same surface as :class:`TokenBucket` (``tokens``, ``ready``, ``wait``, ``refill``, ``size``,
    ``rate``): spending (``tokens -= cost``) logs ``cost`` requests at the last refill's time, and
    lowering ``tokens`` to what the vendor says remains (or to 0 after a ``429``) logs the difference
    as spent then, so they count until a whole ``span`` has passed. Not thread-safe on its own.

    With ``spread`` (a number of requests), also at most ``spread`` of them in any ``span * spread /
    size`` seconds: the window's requests are spread over it instead of spent in one burst at its start.
    A backfill that keeps the window full then leaves a slot every ``span / size`` seconds or so, not one
    whole window later: a live change queued behind it waits about a second, not up to ``span``. Only
    spends of at most ``spread`` at once count there: a larger drop is the vendor's own count of its
    window (its headers say what remains), which the whole span holds."""

    __slots__ = ("parts", "rate", "size", "span", "spread", "stamp", "times")

    def __init__(self, size: float, span: float, now: float, *, spread: int | None = None) -> None:
        self.size = size
        self.span = span
        self.spread = spread
        self.rate = size / span  # the steady pace it allows (requests per second)
        self.stamp = now
        self.times: deque[float] = deque()
        self.parts: deque[float] = deque(maxlen=spread or 0)  # the latest spends the spread counts

    def refill(self, now: float) -> None:
        """Forget the requests older than ``span`` seconds (``now``: the clock's monotonic seconds)."""
        self.stamp = max(self.stamp, now)
        while self.times and self.times[0] <= self.stamp - self.span:
            self.times.popleft()

    @property
    def tokens(self) -> float:
        return max(0.0, self.size - len(self.times))

    @tokens.setter
    def tokens(self, value: float) -> None:
        spent = math.ceil(self.tokens - max(0.0, value) - EPSILON)
        self.times.extend([self.stamp] * max(0, spent))
        if self.spread is not None and 0 < spent <= self.spread:
            self.parts.extend([self.stamp] * spent)

    def ready(self, cost: float = 1.0) -> bool:
        return self.tokens + EPSILON >= cost and self._spread_wait(cost) <= 0.0

    def wait(self, cost: float = 1.0) -> float:
        """Seconds until ``cost`` more requests fit (the oldest that must go have left the span, and,
        with ``spread``, the shorter span)."""
        over = math.ceil(len(self.times) + cost - self.size - EPSILON)
        if over <= 0:
            whole = 0.0
        elif over > len(self.times):
            whole = self.span
        else:
            whole = max(0.0, self.times[over - 1] + self.span - self.stamp)
        return max(whole, self._spread_wait(cost))

    def _spread_wait(self, cost: float) -> float:
        """Seconds until ``cost`` more fit in the shorter span of ``spread`` requests (0: they do)."""
        if self.spread is None or cost > self.spread:
            return 0.0
        short = self.span * self.spread / self.size
        recent = [at for at in reversed(self.parts) if at > self.stamp - short]
        over = math.ceil(len(recent) + cost - self.spread - EPSILON)
        if over <= 0:
            return 0.0
        return max(0.0, recent[len(recent) - over] + short - self.stamp)

    def full(self) -> bool:
        return not self.times

    def block(self, seconds: float | None = None) -> None:
        """Nothing more for ``seconds`` (a ``429``'s ``Retry-After``, at most a span; None: a whole span),
        then a whole window: the vendor's window has reset by then."""
        wait = self.span if seconds is None else max(0.0, min(seconds, self.span))
        self.times = deque([self.stamp + wait - self.span] * math.ceil(self.size))


Pace = TokenBucket | WindowLog  # what paces a connector's requests (see the worker's ``bucket``)
