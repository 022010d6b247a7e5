"""Time. Engine code asks an injected :class:`Clock`; only :class:`SystemClock` reads the wall."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

from leadflow.kernel.errors import Invalid


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for measuring intervals (rate limits): never set back on a
        running system, unlike :meth:`now`; a virtual clock answers its own time."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (pacing a client to a vendor's window): really on the system clock; a virtual
        clock moves itself forward instead, so a test or the simulator never waits."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class VirtualClock:
    """A clock that only moves when told to: tests and the journey simulator."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._origin = self._now
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Seconds of virtual time since the start: moves exactly as :meth:`advance` and :meth:`set` say
        (measured from the start, not 1970, so that float seconds keep microseconds exact)."""
        with self._lock:
            return (self._now - self._origin).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.advance(timedelta(seconds=max(0.0, seconds)))

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._now += delta
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = as_utc(moment)


class BeyondCalendar(Invalid, OverflowError):
    """An instant whose UTC time falls outside years 1-9999 (``0001-01-01T00:00+14:00``): ``422
    invalid_datetime`` when it reaches the API, an ``OverflowError`` to code that already expects one."""

    code = "invalid_datetime"


def as_utc(moment: datetime) -> datetime:
    """Interpret a naive datetime as UTC and convert an aware one to UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise BeyondCalendar(f"{moment.isoformat()} is outside the years 1 to 9999 in UTC") from None
