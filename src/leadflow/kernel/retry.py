"""Retry schedules: when a failed attempt is tried again, and when to give up.

A schedule is a tuple of delays: after failed attempt *n* (the first attempt is 1) the next one is due
``delays[n - 1]`` later; when the attempt after the last delay fails too, the work has failed for good
(``len(delays) + 1`` attempts in all). A receiver that answers ``Retry-After`` is waited for when it
asks for longer than the schedule, up to ``retry_after_cap`` (it cannot park work for ever). Jitter
(``jitter=0.1``: each delay drawn within ±10 %) spreads the retries of many items that failed together
(a vendor's outage); it is off unless a schedule asks for it, so the schedules of the deliverers and the
journey executor are exact.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from leadflow.kernel.clock import as_utc

_ZERO = timedelta(0)
_LONGEST = int(timedelta.max.total_seconds()) - 86_400  # delta-seconds a timedelta can hold


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[timedelta, ...]
    retry_after_cap: timedelta | None = None  # the longest Retry-After honoured (None: no Retry-After)
    jitter: float = 0.0  # fraction of each delay drawn at random either way; 0: exact

    def __post_init__(self) -> None:
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter is a fraction of the delay, from 0 up to (not including) 1")

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first, then one per delay."""
        return len(self.delays) + 1

    def gives_up(self, attempt: int) -> bool:
        """Whether failed attempt number ``attempt`` (from 1) was the last one."""
        return attempt > len(self.delays)

    def delay(
        self,
        attempt: int,
        retry_after: timedelta | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> timedelta | None:
        """How long after failed attempt ``attempt`` (from 1) the next one is due; ``None``: give up.

        ``retry_after``: what the other side asked for (see :func:`parse_retry_after`); it counts when
        longer than the schedule's delay, up to :attr:`retry_after_cap`.
        """
        if attempt < 1:
            raise ValueError("attempts are counted from 1")
        if self.gives_up(attempt):
            return None
        delay = self.delays[attempt - 1]
        if self.jitter:
            delay *= 1.0 + self.jitter * (2.0 * rand() - 1.0)
        if retry_after is not None and self.retry_after_cap is not None:
            delay = max(delay, min(retry_after, self.retry_after_cap))
        return delay

    def next_due(
        self,
        now: datetime,
        attempt: int,
        retry_after: timedelta | None = None,
        *,
        rand: Callable[[], float] = random.random,
    ) -> datetime | None:
        """When the attempt after failed attempt ``attempt`` is due; ``None``: give up."""
        delay = self.delay(attempt, retry_after, rand=rand)
        return None if delay is None else now + delay


def parse_retry_after(value: str | None, now: datetime, cap: timedelta | None = None) -> timedelta | None:
    """An HTTP ``Retry-After`` header as a delay: delta-seconds or an HTTP date (``now`` is when the
    answer came); never negative, at most ``cap`` (a number of seconds too large for any date is the
    cap); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = int(value)
        if seconds > _LONGEST:  # beyond what a timedelta holds: as long as allowed
            return cap
        delay = timedelta(seconds=seconds)
    else:
        try:
            delay = as_utc(parsedate_to_datetime(value)) - now
        except (TypeError, ValueError, IndexError):
            return None
    delay = max(_ZERO, delay)
    return delay if cap is None else min(delay, cap)
