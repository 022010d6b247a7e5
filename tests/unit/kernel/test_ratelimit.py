"""Token-bucket rate limiting (no sleeps: refill is driven by a patched monotonic clock)."""

from __future__ import annotations

import time

import pytest

from leadflow.kernel.errors import RateLimited
from leadflow.kernel.ratelimit import RateLimiter, TokenBucket, WindowLog


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def assert_limited(limiter: RateLimiter, caller: str, cost: float = 1.0) -> RateLimited:
    with pytest.raises(RateLimited, match="rate limit of") as info:
        limiter.check(caller, cost)
    assert info.value.code == "rate_limited"
    assert isinstance(info.value.retry_after, int)
    assert info.value.retry_after > 0
    return info.value


@pytest.mark.parametrize(("rate", "burst"), [(0.01, 1.0), (0.5, 1.0), (3, 6), (10, 20)])
def test_default_burst_is_twice_the_rate_and_at_least_one(rate: float, burst: float) -> None:
    assert RateLimiter(rate).burst == burst


def test_burst_is_allowed_then_limited() -> None:
    limiter = RateLimiter(0.01, burst=3)
    for _ in range(3):
        limiter.check("k1")
    assert_limited(limiter, "k1")


def test_callers_have_separate_buckets() -> None:
    limiter = RateLimiter(0.01)
    limiter.check("k1")
    assert_limited(limiter, "k1")
    limiter.check("k2")
    assert_limited(limiter, "k2")


def test_cost_spends_several_tokens() -> None:
    limiter = RateLimiter(0.01, burst=5)
    limiter.check("k1", cost=4)
    assert_limited(limiter, "k1", cost=2)
    limiter.check("k1", cost=1)


def test_cost_above_the_burst_is_always_limited() -> None:
    assert_limited(RateLimiter(0.01, burst=2), "k1", cost=3)


@pytest.mark.parametrize("rate", [0, -1])
def test_zero_or_negative_rate_disables_limiting(rate: float) -> None:
    limiter = RateLimiter(rate)
    for _ in range(100):
        limiter.check("k1", cost=1e9)
    assert limiter.burst == 1.0


def test_tokens_refill_over_time(monotonic: FakeMonotonic) -> None:
    limiter = RateLimiter(1, burst=2)
    limiter.check("k1")
    limiter.check("k1")
    assert_limited(limiter, "k1")
    monotonic.now += 1.0
    limiter.check("k1")
    assert_limited(limiter, "k1")


def test_refill_never_exceeds_the_burst(monotonic: FakeMonotonic) -> None:
    limiter = RateLimiter(1, burst=2)
    limiter.check("k1")
    monotonic.now += 3600
    limiter.check("k1")
    limiter.check("k1")
    assert_limited(limiter, "k1")


def test_a_refused_request_spends_nothing(monotonic: FakeMonotonic) -> None:
    limiter = RateLimiter(1, burst=1)
    limiter.check("k1")
    for _ in range(5):
        assert_limited(limiter, "k1")
    monotonic.now += 1.0
    limiter.check("k1")


def test_buckets_of_callers_gone_quiet_are_dropped_and_a_limited_caller_stays_limited(
    monotonic: FakeMonotonic,
) -> None:
    limiter = RateLimiter(1.0, burst=2.0, keep=100)
    limiter.check("busy", 2.0)  # empty: limited for a while
    for number in range(99):
        limiter.check(f"ip-{number}")
    assert len(limiter) == 100
    monotonic.now += 1.5  # the 99 are whole again; "busy" has earned 1.5 of its 2 tokens
    limiter.check("newcomer")
    assert len(limiter) == 2  # "busy" and "newcomer"
    limiter.check("busy")
    assert_limited(limiter, "busy")
    for number in range(150):  # active callers survive a sweep
        limiter.check(f"other-{number}")
    assert len(limiter) == 152


def test_a_window_log_never_lets_more_than_its_size_into_any_span() -> None:
    """A token bucket of 10/s holding 100 lets ~200 requests into one fixed 10-s window; the log lets
    100, then the next ones only as the first leave the span."""
    bucket, log = TokenBucket(10, 100, 0.0), WindowLog(100, 10, 0.0)
    for limiter in (bucket, log):
        sent: list[float] = []
        for step in range(200):  # a worker trying every 0.05 s for 10 s
            now = step * 0.05
            limiter.refill(now)
            while limiter.ready():
                limiter.tokens -= 1
                sent.append(now)
        in_window = sum(1 for at in sent if at < 10)
        assert in_window == (100 if limiter is log else 199)


def test_a_spread_window_log_keeps_its_pace_and_leaves_a_slot_every_part_of_the_window() -> None:
    """Kept full by a backfill, a log spends its window in one burst at the window's start: a request
    arriving after it waits up to a whole window. Spread in 10 parts it waits at most one part (1 s), and
    the window still holds its 100."""
    longest = {}
    for spread in (None, 10):
        log = WindowLog(100, 10, 0.0, spread=spread)
        sent: list[float] = []
        waits: list[float] = []
        for step in range(600):  # a backfill trying every 0.05 s for 30 s
            now = step * 0.05
            log.refill(now)
            waits.append(log.wait())
            while log.ready():
                log.tokens -= 1
                sent.append(now)
        assert sum(1 for at in sent if at < 10) == 100  # the window's worth, spread or not
        assert all(sum(1 for at in sent if start <= at < start + 10) <= 100 for start in sent)
        if spread is not None:
            assert all(sum(1 for at in sent if start <= at < start + 1) <= 10 for start in sent)
        longest[spread] = max(waits[200:])  # once the log is full
    assert longest[10] <= 1.0 + 1e-9
    assert longest[None] > 9.0


def test_a_window_log_waits_for_the_oldest_and_counts_what_it_is_told_is_spent() -> None:
    log = WindowLog(3, 10, 0.0)
    log.tokens -= 2
    log.refill(4.0)
    log.tokens -= 1
    assert not log.ready()
    assert log.wait() == pytest.approx(6.0)  # the first two leave the span at 10
    assert log.wait(3) == pytest.approx(10.0)  # the third at 14
    log.refill(10.0)
    assert log.tokens == 2
    log.tokens = 0  # the vendor says nothing remains (a 429): a whole span from now
    assert log.wait() == pytest.approx(4.0)  # the one from 4 s leaves at 14
    log.refill(14.0)
    assert log.tokens == 1
    log.refill(20.0)
    assert log.full()


def test_a_window_log_blocked_by_a_429_waits_its_retry_after_then_has_a_whole_window() -> None:
    log = WindowLog(100, 10, 0.0)
    log.tokens -= 5
    log.block(2.0)
    assert not log.ready()
    assert log.wait() == pytest.approx(2.0)
    log.refill(2.0)
    assert log.tokens == 100
    log.block()  # no Retry-After: a whole span
    assert log.wait() == pytest.approx(10.0)
