"""How fast email may leave: a global budget and a budget per recipient domain.

Business rule: the relay or ESP plan allows so many messages a minute (``per_minute``), and large
mailbox providers (gmail.com, outlook.com, ...) throttle, greylist or junk a sender that arrives in
bursts, so no single recipient domain gets more than ``per_domain_per_minute``. Both budgets are token
buckets that hold at most one minute's worth and refill continuously with the clock: after a quiet
period a full minute's budget can go at once, after that messages flow at the steady rate. ``0`` means
unlimited. A message held back for its domain does not block messages for other domains behind it
(a big gmail list must not starve the small domains); a message held back by the global budget holds
back everything after it, in order.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from leadflow.kernel.clock import Clock
from leadflow.kernel.ratelimit import TokenBucket

_PRUNE_FLOOR = 1024  # domain buckets kept before full ones are dropped


def _bucket(per_minute: int, now: float) -> TokenBucket:
    """A bucket that holds one minute's budget and refills it over a minute."""
    return TokenBucket(per_minute / 60.0, float(per_minute), now)


class Throttle:
    """Thread-safe; one instance is shared by every deliverer of a process."""

    def __init__(self, per_minute: int, per_domain_per_minute: int, clock: Clock) -> None:
        if per_minute < 0 or per_domain_per_minute < 0:
            raise ValueError("throttle budgets must be 0 (unlimited) or positive")
        self.per_minute = per_minute
        self.per_domain_per_minute = per_domain_per_minute
        self._clock = clock
        self._lock = threading.Lock()
        self._global = _bucket(per_minute, clock.monotonic()) if per_minute else None
        self._domains: dict[str, TokenBucket] = {}
        self._prune_at = _PRUNE_FLOOR

    def take(self, domains: Sequence[str]) -> tuple[list[int], float]:
        """Spend budget for what may go now.

        ``domains`` are the recipient domains of a candidate batch, in order. Returns the indices that
        may be sent now (budget is spent for them) and, when some were held back, the seconds until
        the next held-back one could go (``0.0`` when nothing was held back).
        """
        with self._lock:
            now = self._clock.monotonic()
            if self._global is not None:
                self._global.refill(now)
            allowed: list[int] = []
            held: set[str] = set()
            for index, raw in enumerate(domains):
                domain = raw.strip().lower()
                if self._global is not None and not self._global.ready():
                    held.add(domain)
                    held.update(name.strip().lower() for name in domains[index + 1 :])
                    break
                bucket = self._domain_bucket(domain, now)
                if bucket is not None and not bucket.ready():
                    held.add(domain)
                    continue
                if bucket is not None:
                    bucket.tokens -= 1.0
                if self._global is not None:
                    self._global.tokens -= 1.0
                allowed.append(index)
            wait = self._wait(held, now) if held else 0.0
            self._prune(now)
            return allowed, wait

    def _domain_bucket(self, domain: str, now: float) -> TokenBucket | None:
        if not self.per_domain_per_minute:
            return None
        bucket = self._domains.get(domain)
        if bucket is None:
            bucket = self._domains[domain] = _bucket(self.per_domain_per_minute, now)
        else:
            bucket.refill(now)
        return bucket

    def _wait(self, held: set[str], now: float) -> float:
        """The earliest moment one held-back message has both a global and a domain token."""
        global_wait = self._global.wait() if self._global is not None else 0.0
        domain_wait = min(
            (bucket.wait() for name in held if (bucket := self._domain_bucket(name, now)) is not None),
            default=0.0,
        )
        return max(global_wait, domain_wait)

    def _prune(self, now: float) -> None:
        """Forget domain buckets that refilled completely (a fresh bucket is the same)."""
        if len(self._domains) <= self._prune_at:
            return
        for name in list(self._domains):
            bucket = self._domains[name]
            bucket.refill(now)
            if bucket.full():
                del self._domains[name]
        self._prune_at = max(_PRUNE_FLOOR, 2 * len(self._domains))
