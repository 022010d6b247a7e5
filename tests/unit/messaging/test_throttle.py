"""Delivery rate limits: a global and a per-domain token bucket, driven by a VirtualClock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from leadflow.kernel.clock import VirtualClock
from leadflow.messaging.delivery.throttle import Throttle


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


def test_zero_means_unlimited(clock: VirtualClock) -> None:
    throttle = Throttle(0, 0, clock)
    domains = ["gmail.com"] * 5000
    assert throttle.take(domains) == (list(range(5000)), 0.0)


def test_the_global_budget_lets_a_minute_go_at_once_then_refills_steadily(clock: VirtualClock) -> None:
    throttle = Throttle(3, 0, clock)
    assert throttle.take(["a.test", "b.test", "c.test", "d.test", "e.test"]) == ([0, 1, 2], 20.0)
    assert throttle.take(["d.test"]) == ([], 20.0)
    clock.advance(timedelta(seconds=10))
    allowed, wait = throttle.take(["d.test"])
    assert allowed == []
    assert wait == pytest.approx(10.0)
    clock.advance(timedelta(seconds=10))
    allowed, wait = throttle.take(["d.test", "e.test"])
    assert allowed == [0]
    assert wait == pytest.approx(20.0)


def test_the_bucket_never_holds_more_than_a_minute(clock: VirtualClock) -> None:
    throttle = Throttle(60, 0, clock)
    clock.advance(timedelta(hours=5))
    allowed, wait = throttle.take([f"d{number}.test" for number in range(100)])
    assert allowed == list(range(60))
    assert wait == pytest.approx(1.0)


def test_refill_is_continuous(clock: VirtualClock) -> None:
    throttle = Throttle(60, 0, clock)
    throttle.take(["x.test"] * 60)
    clock.advance(timedelta(milliseconds=2500))
    allowed, wait = throttle.take(["x.test"] * 5)
    assert allowed == [0, 1]
    assert wait == pytest.approx(0.5)


def test_a_domain_over_its_budget_does_not_block_other_domains(clock: VirtualClock) -> None:
    throttle = Throttle(0, 2, clock)
    domains = ["gmail.com", "gmail.com", "gmail.com", "outlook.com", "gmail.com", "outlook.com"]
    allowed, wait = throttle.take(domains)
    assert allowed == [0, 1, 3, 5]
    assert wait == pytest.approx(30.0)  # 2 a minute: one token every 30 s


def test_domains_are_compared_without_case_or_spaces(clock: VirtualClock) -> None:
    throttle = Throttle(0, 1, clock)
    assert throttle.take(["Gmail.COM", " gmail.com", "yahoo.com"]) == ([0, 2], 60.0)


def test_the_global_budget_holds_back_everything_after_it_in_order(clock: VirtualClock) -> None:
    throttle = Throttle(2, 1, clock)
    allowed, wait = throttle.take(["gmail.com", "gmail.com", "outlook.com", "yahoo.com"])
    assert allowed == [0, 2]
    # yahoo.com has its own token: it waits only for the global one (30 s), not for gmail's 60 s
    assert wait == pytest.approx(30.0)


def test_the_wait_is_for_the_soonest_held_back_message(clock: VirtualClock) -> None:
    throttle = Throttle(0, 2, clock)
    throttle.take(["gmail.com", "gmail.com"])
    clock.advance(timedelta(seconds=20))
    throttle.take(["outlook.com", "outlook.com"])
    allowed, wait = throttle.take(["outlook.com", "gmail.com"])
    assert allowed == []
    assert wait == pytest.approx(10.0)  # gmail's next token comes 30 s after it ran dry, 20 s ago


def test_a_clock_going_backwards_gives_no_tokens(clock: VirtualClock) -> None:
    throttle = Throttle(1, 0, clock)
    assert throttle.take(["a.test"]) == ([0], 0.0)
    clock.advance(timedelta(seconds=-3600))
    assert throttle.take(["a.test"])[0] == []
    clock.advance(timedelta(seconds=3600 + 30))
    assert throttle.take(["a.test"])[0] == []
    clock.advance(timedelta(seconds=30))
    assert throttle.take(["a.test"])[0] == [0]


def test_many_domains_are_forgotten_only_once_their_budget_is_whole_again(clock: VirtualClock) -> None:
    throttle = Throttle(0, 1, clock)
    domains = [f"d{number}.test" for number in range(3000)]
    assert throttle.take(domains)[0] == list(range(3000))
    assert throttle.take(["d7.test"]) == ([], 60.0)
    clock.advance(timedelta(seconds=60))
    assert throttle.take(domains)[0] == list(range(3000))
    assert throttle.take(["d2999.test", "new.test"]) == ([1], 60.0)


def test_negative_budgets_are_refused(clock: VirtualClock) -> None:
    with pytest.raises(ValueError, match="unlimited"):
        Throttle(-1, 0, clock)


def test_threads_share_the_budget_exactly(clock: VirtualClock) -> None:
    throttle = Throttle(100, 0, clock)
    granted: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            allowed, _wait = throttle.take(["example.test"])
            with lock:
                granted.extend(allowed)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 100
