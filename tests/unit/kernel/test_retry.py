"""Retry schedules: delays by attempt, giving up, Retry-After, jitter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadflow.kernel.retry import RetrySchedule, parse_retry_after

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
THREE = RetrySchedule((timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10)))


def test_each_failed_attempt_waits_its_delay() -> None:
    assert [THREE.delay(attempt) for attempt in (1, 2, 3)] == list(THREE.delays)
    assert THREE.next_due(NOW, 2) == NOW + timedelta(minutes=2)


def test_the_attempt_after_the_last_delay_gives_up() -> None:
    assert THREE.max_attempts == 4
    assert not THREE.gives_up(3)
    assert THREE.gives_up(4)
    assert THREE.delay(4) is None
    assert THREE.next_due(NOW, 5) is None


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        THREE.delay(0)


def test_retry_after_is_ignored_unless_the_schedule_honours_it() -> None:
    assert THREE.delay(1, timedelta(hours=1)) == timedelta(seconds=30)


def test_retry_after_counts_when_longer_up_to_the_cap() -> None:
    schedule = RetrySchedule(THREE.delays, retry_after_cap=timedelta(hours=1))
    assert schedule.delay(1, timedelta(seconds=10)) == timedelta(seconds=30)
    assert schedule.delay(1, timedelta(minutes=5)) == timedelta(minutes=5)
    assert schedule.delay(1, timedelta(days=3)) == timedelta(hours=1)
    assert schedule.delay(4, timedelta(minutes=5)) is None  # Retry-After never adds an attempt


def test_jitter_is_off_by_default_and_stays_within_its_fraction() -> None:
    assert THREE.jitter == 0.0
    assert THREE.delay(1, rand=lambda: 0.0) == timedelta(seconds=30)
    jittered = RetrySchedule(THREE.delays, jitter=0.1)
    assert jittered.delay(1, rand=lambda: 0.0) == timedelta(seconds=27)
    assert jittered.delay(1, rand=lambda: 0.5) == timedelta(seconds=30)
    assert jittered.delay(1, rand=lambda: 1.0) == timedelta(seconds=33)


def test_jitter_never_shortens_below_a_retry_after() -> None:
    schedule = RetrySchedule(THREE.delays, retry_after_cap=timedelta(hours=1), jitter=0.5)
    assert schedule.delay(1, timedelta(seconds=40), rand=lambda: 0.0) == timedelta(seconds=40)


@pytest.mark.parametrize("jitter", [-0.1, 1.0])
def test_jitter_is_a_fraction(jitter: float) -> None:
    with pytest.raises(ValueError, match="fraction"):
        RetrySchedule(THREE.delays, jitter=jitter)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("120", timedelta(minutes=2)),
        (" 7 ", timedelta(seconds=7)),
        ("Mon, 02 Mar 2026 09:05:00 GMT", timedelta(minutes=5)),
        ("Mon, 02 Mar 2026 08:00:00 GMT", timedelta(0)),  # a date in the past: at once
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_headers(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header, NOW) == expected


def test_retry_after_is_capped() -> None:
    assert parse_retry_after("999999", NOW, timedelta(days=1)) == timedelta(days=1)
    assert parse_retry_after("9" * 40, NOW, timedelta(days=1)) == timedelta(days=1)
    assert parse_retry_after("9" * 40, NOW) is None  # no cap and more than any date: unreadable
    assert parse_retry_after("Sun, 01 Mar 2026 09:00:00 GMT", NOW, timedelta(days=1)) == timedelta(0)
