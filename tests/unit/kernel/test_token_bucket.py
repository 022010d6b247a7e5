"""The token bucket on the injected clock: burst, refill, a clock set back, and the per-key limiter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.errors import RateLimited
from leadflow.kernel.ratelimit import RateLimiter, TokenBucket


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def spend(bucket: TokenBucket, clock: VirtualClock, count: int) -> int:
    """Take up to ``count`` tokens now; how many were there."""
    bucket.refill(clock.monotonic())
    taken = 0
    while taken < count and bucket.ready():
        bucket.tokens -= 1.0
        taken += 1
    return taken


def test_a_full_bucket_is_the_burst_then_it_refills_at_the_rate(clock: VirtualClock) -> None:
    bucket = TokenBucket(2.0, 5.0, clock.monotonic())
    assert spend(bucket, clock, 10) == 5
    assert bucket.wait() == pytest.approx(0.5)
    clock.advance(timedelta(seconds=1))
    assert spend(bucket, clock, 10) == 2
    clock.advance(timedelta(milliseconds=250))
    assert spend(bucket, clock, 10) == 0
    assert bucket.wait() == pytest.approx(0.25)


def test_refill_stops_at_the_size(clock: VirtualClock) -> None:
    bucket = TokenBucket(2.0, 5.0, clock.monotonic())
    spend(bucket, clock, 5)
    clock.advance(timedelta(hours=1))
    bucket.refill(clock.monotonic())
    assert bucket.full()
    assert spend(bucket, clock, 10) == 5


def test_a_clock_set_back_earns_nothing_until_it_caught_up(clock: VirtualClock) -> None:
    bucket = TokenBucket(1.0, 1.0, clock.monotonic())
    assert spend(bucket, clock, 1) == 1
    clock.advance(timedelta(seconds=-100))
    assert spend(bucket, clock, 1) == 0
    clock.advance(timedelta(seconds=100))
    assert spend(bucket, clock, 1) == 0
    clock.advance(timedelta(seconds=1))
    assert spend(bucket, clock, 1) == 1


def test_a_token_due_is_not_lost_to_float_rounding(clock: VirtualClock) -> None:
    bucket = TokenBucket(1 / 60, 1.0, clock.monotonic())
    assert spend(bucket, clock, 1) == 1
    for _ in range(3):
        clock.advance(timedelta(seconds=20))
        bucket.refill(clock.monotonic())
    assert bucket.ready()


def test_the_virtual_clock_drives_the_limiter(clock: VirtualClock) -> None:
    limiter = RateLimiter(1, burst=2, clock=clock)
    limiter.check("k1")
    limiter.check("k1")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k1")
    assert refused.value.retry_after == 1
    clock.advance(timedelta(seconds=1))
    limiter.check("k1")


def test_each_key_has_its_own_bucket(clock: VirtualClock) -> None:
    limiter = RateLimiter(0.5, burst=1, clock=clock)
    limiter.check("k1")
    limiter.check("k2")
    with pytest.raises(RateLimited) as refused:
        limiter.check("k1")
    assert refused.value.retry_after == 2
    clock.advance(timedelta(seconds=2))
    limiter.check("k1")
    limiter.check("k2")
