"""Token buckets: the one rate-limiting mechanism (API keys here, email budgets in messaging's throttle,
the connectors' vendor limits).

A bucket holds at most ``size`` tokens and earns ``rate`` tokens per second, continuously, on the
injected clock's :meth:`~leadflow.kernel.clock.Clock.monotonic` seconds: after a quiet period a whole
bucket may be spent at once (the burst), after that work flows at the steady rate. Time that goes back
(a virtual clock set back) earns nothing until it has caught up again: time already counted is not
counted twice.
"""

from __future__ import annotations

import math
import threading

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
