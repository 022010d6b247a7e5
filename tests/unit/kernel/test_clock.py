"""The virtual clock and UTC conversion."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from leadflow.kernel.clock import SystemClock, VirtualClock, as_utc

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_default_start() -> None:
    assert VirtualClock().now() == datetime(2026, 1, 1, tzinfo=UTC)


def test_clock_stands_still_until_told() -> None:
    clock = VirtualClock(START)
    assert clock.now() == START
    assert clock.now() == START


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2026, 1, 1))


def test_advance_returns_and_keeps_the_new_time() -> None:
    clock = VirtualClock(START)
    assert clock.advance(timedelta(hours=2)) == START + timedelta(hours=2)
    assert clock.advance(timedelta(minutes=-30)) == START + timedelta(hours=1, minutes=30)
    assert clock.now() == START + timedelta(hours=1, minutes=30)


def test_set_converts_to_utc() -> None:
    clock = VirtualClock(START)
    clock.set(datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))))
    assert clock.now() == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


@pytest.fixture
def tokyo_local_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo_local_time")
def test_set_does_not_depend_on_the_host_time_zone() -> None:
    clock = VirtualClock(START)
    naive = datetime(2026, 6, 1, 12, 0)
    refused = False
    try:
        clock.set(naive)
    except ValueError:
        refused = True
    # Either refuse naive input (like the constructor) or read it as UTC (like as_utc).
    assert refused or clock.now() == naive.replace(tzinfo=UTC)


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2026, 1, 1, 8, 0), datetime(2026, 1, 1, 8, 0, tzinfo=UTC)),
        (datetime(2026, 1, 1, 8, 0, tzinfo=UTC), datetime(2026, 1, 1, 8, 0, tzinfo=UTC)),
        (
            datetime(2026, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=-5))),
            datetime(2026, 1, 1, 13, 0, tzinfo=UTC),
        ),
    ],
)
def test_as_utc(given: datetime, expected: datetime) -> None:
    result = as_utc(given)
    assert result == expected
    assert result.tzinfo is UTC
