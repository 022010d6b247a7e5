"""Token buckets per caller: a steady ``rate`` per second with bursts up to twice that."""

from __future__ import annotations

import math
import threading
import time

from leadflow.kernel.errors import RateLimited


class RateLimiter:
    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate * 2)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, caller: str, cost: float = 1.0) -> None:
        """Spend ``cost`` tokens or raise :class:`RateLimited` with the seconds to wait."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, stamp = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - stamp) * self.rate)
            if tokens < cost:
                self._buckets[caller] = (tokens, now)
                wait = max(1, math.ceil((cost - tokens) / self.rate))
                raise RateLimited(f"rate limit of {self.rate:g} requests/s exceeded", retry_after=wait)
            self._buckets[caller] = (tokens - cost, now)
