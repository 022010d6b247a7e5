"""The hosted forms' rate limit: a token bucket per client address.

Each address may post ``LEADFLOW_FORM_RATE_PER_MINUTE`` times in a burst, then at that rate (0 turns
the limit off); more is ``429 rate_limited`` with ``Retry-After``. The buckets run on the injected
clock. Anyone on the internet can post, so the table of buckets must not grow with every address ever
seen: past :data:`MAX_TRACKED` addresses, buckets that have filled up again (their address has been
quiet for a minute, and a fresh bucket would be the same) are dropped. One table per process: with N
server processes an address may post N times the rate.
"""

from __future__ import annotations

import math
import threading

from leadflow.kernel.clock import Clock
from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.errors import RateLimited
from leadflow.kernel.ratelimit import TokenBucket

MAX_TRACKED = 10_000


class PerAddress:
    def __init__(self, per_minute: int, clock: Clock) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.buckets: dict[str, TokenBucket] = {}
        self.lock = threading.Lock()

    def check(self, address: str) -> None:
        """Spend one post of ``address`` or raise :class:`RateLimited`."""
        if self.per_minute <= 0:
            return
        now = self.clock.monotonic()
        with self.lock:
            bucket = self.buckets.get(address)
            if bucket is None:
                if len(self.buckets) >= MAX_TRACKED:
                    self._prune(now)
                bucket = self.buckets[address] = TokenBucket(self.per_minute / 60, self.per_minute, now)
            bucket.refill(now)
            if not bucket.ready():
                wait = max(1, math.ceil(bucket.wait()))
                raise RateLimited(
                    f"at most {self.per_minute} posts a minute from one address", retry_after=wait
                )
            bucket.tokens -= 1

    def _prune(self, now: float) -> None:
        for address, bucket in list(self.buckets.items()):
            bucket.refill(now)
            if bucket.full():
                del self.buckets[address]


LIMITER: Slot[PerAddress] = Slot(
    "capture.rate_limit", lambda ctx: PerAddress(ctx.settings.form_rate_per_minute, ctx.clock)
)


def check(ctx: AppContext, address: str | None) -> None:
    ctx.get(LIMITER).check(address or "unknown")
