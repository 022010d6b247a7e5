"""The worker loop every background job runs in: claim → run → wait → again, until stopped.

A job is a callable that runs one batch and answers how much it did (``0``: nothing was due). The loop
(:meth:`WorkerLoop.run`) calls it again at once while there is work; when there is none it waits on the
job's signal channel (:mod:`leadflow.kernel.signals`), so newly committed work starts at once, at most
:attr:`WorkerLoop.poll` seconds (or what :attr:`WorkerLoop.idle` answers, e.g. until the next due row),
so a lost wake-up only costs latency. The loop ends when the stop event is set (the worker also wakes
the channel, so a sleeping loop notices at once).

Failures never end the loop:

* a *transient* database error (connection lost, server restarting, pool timeout: :data:`TRANSIENT`)
  pauses the job for :attr:`WorkerLoop.pause` seconds (four polls, at most 5 s, unless the job says),
  logged as a warning, and the job tries again;
* a job that raises :class:`Halted` knows the cause is not its work (the event processor's breaker):
  logged as critical, without a traceback;
* any other error is logged with its traceback.

After either of the last two the loop waits :attr:`WorkerLoop.backoff` seconds, twice as long after
each failure in a row up to :attr:`WorkerLoop.max_backoff`; a batch that succeeds starts over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

TRANSIENT: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


class Halted(RuntimeError):
    """The job stops itself for a while: the cause of its failures is not the work (retried with
    backoff, logged as critical)."""


class Wakeups(Protocol):
    """What the loop needs of :class:`~leadflow.kernel.signals.Signals`."""

    def wait(self, channel: str, timeout: float) -> bool: ...


Job = Callable[[], int]  # runs one batch; how much it did (0: nothing to do)


@dataclass(frozen=True)
class WorkerLoop:
    """How one job is run. ``name`` starts its log lines ("journey executor paused: ...")."""

    name: str
    job: Job
    channel: str
    poll: float  # the longest idle wait for a wake-up, in seconds
    backoff: float  # the first pause after a failure
    max_backoff: float
    pause: float | None = None  # the pause after a transient database error (default: 4 polls, ≤ 5 s)
    idle: Callable[[], float] | None = None  # the idle wait when it depends on the work (default: poll)
    logger: logging.Logger = log

    def run(self, signals: Wakeups, stop: threading.Event) -> None:
        """Loop until ``stop`` is set."""
        backoff = self.backoff
        pause = min(5.0, self.poll * 4) if self.pause is None else self.pause
        while not stop.is_set():
            try:
                if self.job():
                    backoff = self.backoff
                    continue
                wait = self.poll if self.idle is None else self.idle()
            except TRANSIENT as exc:
                self.logger.warning("%s paused for %.1f s: %s", self.name, pause, exc)
                stop.wait(pause)
                continue
            except Halted as exc:
                self.logger.critical("%s halted, retrying in %.1f s: %s", self.name, backoff, exc)
            except Exception:
                self.logger.exception("%s failed; retrying in %.1f s", self.name, backoff)
            else:
                backoff = self.backoff
                signals.wait(self.channel, wait)
                continue
            stop.wait(backoff)
            backoff = min(self.max_backoff, backoff * 2)
