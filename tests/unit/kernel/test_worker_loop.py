"""The worker loop, on real threads and events: what it does, never how long it takes (every wait in
these tests is a bound on a thread that should already have done its part)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc

from leadflow.kernel.db import Database
from leadflow.kernel.signals import Signals
from leadflow.kernel.worker_loop import Halted, WorkerLoop

BOUND = 10.0  # seconds: generous bound on a wait that should end almost at once
LONG = 60.0  # an interval the loop must not sit out (a test that waited for it would hit BOUND)


class Wakeups:
    """A signal channel like :class:`~leadflow.kernel.signals.Signals` that records how it was waited on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.waits: list[tuple[str, float]] = []

    def wait(self, channel: str, timeout: float) -> bool:
        self.waits.append((channel, timeout))
        woken = self.event.wait(timeout)
        self.event.clear()
        return woken

    def wake(self) -> None:
        self.event.set()


class Script:
    """A job that answers (or raises) what it is told, batch after batch, then reports it is idle."""

    def __init__(self, *steps: int | Exception) -> None:
        self.steps = list(steps)
        self.calls = 0
        self.idle = threading.Event()
        self.called = threading.Condition()

    def __call__(self) -> int:
        with self.called:
            self.calls += 1
            self.called.notify_all()
        if not self.steps:
            self.idle.set()
            return 0
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    def wait_for_calls(self, count: int) -> None:
        with self.called:
            assert self.called.wait_for(lambda: self.calls >= count, BOUND)


class RecordingStop(threading.Event):
    """The stop event, recording every pause the loop takes on it."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.pauses.append(timeout)
            return super().wait(0)  # the pause is recorded, not sat out
        return super().wait(timeout)


def loop(
    job: Callable[[], int],
    *,
    poll: float = LONG,
    pause: float | None = 3.0,
    idle: Callable[[], float] | None = None,
) -> WorkerLoop:
    return WorkerLoop(
        "test job", job, "tests", poll=poll, backoff=1.0, max_backoff=4.0, pause=pause, idle=idle
    )


@contextmanager
def running(worker: WorkerLoop, signals: Wakeups, stop: threading.Event) -> Iterator[threading.Thread]:
    thread = threading.Thread(target=worker.run, args=(signals, stop), daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        signals.wake()
        thread.join(BOUND)
    assert not thread.is_alive()


def test_work_runs_again_at_once_then_the_loop_sleeps_on_its_channel() -> None:
    job = Script(5, 3)
    signals = Wakeups()
    with running(loop(job), signals, threading.Event()):
        assert job.idle.wait(BOUND)
        job.wait_for_calls(3)
    assert signals.waits[0] == ("tests", LONG)  # no wait between the two batches with work


def test_an_announcement_wakes_the_sleeping_loop() -> None:
    job = Script()
    signals = Wakeups()
    with running(loop(job), signals, threading.Event()):
        job.wait_for_calls(1)
        signals.wake()  # without it the loop would sleep LONG and the next line would hit its bound
        job.wait_for_calls(2)


def test_a_committed_announcement_on_the_real_signals_wakes_the_loop(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'signals.db'}")  # never opened: SQLite signals are local
    signals = Signals(database)
    job = Script()
    stop = threading.Event()
    thread = threading.Thread(target=loop(job).run, args=(signals, stop), daemon=True)
    thread.start()
    try:
        job.wait_for_calls(1)
        signals.announce("tests")
        job.wait_for_calls(2)
    finally:
        stop.set()
        signals.wake("tests")
        thread.join(BOUND)
        signals.close()
        database.engine.dispose()
    assert not thread.is_alive()


def test_setting_stop_ends_the_loop_even_with_work_left() -> None:
    stop = threading.Event()
    calls = threading.Semaphore(0)

    def endless() -> int:
        calls.release()
        return 1

    thread = threading.Thread(target=loop(endless).run, args=(Wakeups(), stop), daemon=True)
    thread.start()
    for _ in range(3):
        assert calls.acquire(timeout=BOUND)
    stop.set()
    thread.join(BOUND)
    assert not thread.is_alive()


def test_a_stopped_loop_does_not_run_the_job() -> None:
    stop = threading.Event()
    stop.set()
    job = Script(1)
    loop(job).run(Wakeups(), stop)
    assert job.calls == 0


def test_errors_back_off_doubling_up_to_the_cap_and_success_starts_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    boom = RuntimeError("boom")
    job = Script(boom, boom, boom, boom, 1, boom, 0)
    stop = RecordingStop()
    with caplog.at_level(logging.ERROR), running(loop(job), Wakeups(), stop):
        job.wait_for_calls(7)
    assert stop.pauses == [1.0, 2.0, 4.0, 4.0, 1.0]
    assert "test job failed; retrying in 1.0 s" in caplog.text
    assert "RuntimeError: boom" in caplog.text  # with its traceback


def test_an_idle_success_also_starts_the_backoff_over() -> None:
    boom = RuntimeError("boom")
    job = Script(boom, boom, 0, boom, 0)
    stop = RecordingStop()
    signals = Wakeups()
    signals.wake()  # the idle wait in the middle returns at once
    with running(loop(job), signals, stop):
        job.wait_for_calls(5)
    assert stop.pauses == [1.0, 2.0, 1.0]


def test_a_transient_database_error_pauses_without_growing_the_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lost = sa_exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    boom = RuntimeError("boom")
    job = Script(boom, lost, lost, boom, 0)
    stop = RecordingStop()
    with caplog.at_level(logging.WARNING), running(loop(job), Wakeups(), stop):
        job.wait_for_calls(5)
    assert stop.pauses == [1.0, 3.0, 3.0, 2.0]
    assert "test job paused for 3.0 s" in caplog.text


def test_the_transient_pause_defaults_to_four_polls_at_most_five_seconds() -> None:
    lost = sa_exc.InterfaceError("SELECT 1", {}, Exception("gone"))
    for poll, pause in ((0.5, 2.0), (10.0, 5.0)):
        job = Script(lost)
        stop = RecordingStop()
        with running(loop(job, poll=poll, pause=None), Wakeups(), stop):
            job.wait_for_calls(2)
        assert stop.pauses == [pause]


def test_a_halt_is_critical_without_a_traceback_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    job = Script(Halted("five in a row"), Halted("five in a row"), 0)
    stop = RecordingStop()
    with caplog.at_level(logging.CRITICAL), running(loop(job), Wakeups(), stop):
        job.wait_for_calls(3)
    assert stop.pauses == [1.0, 2.0]
    [first, _] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert first.getMessage() == "test job halted, retrying in 1.0 s: five in a row"
    assert first.exc_info is None


def test_the_idle_wait_can_come_from_the_job() -> None:
    job = Script()
    signals = Wakeups()
    with running(loop(job, idle=lambda: 0.25), signals, threading.Event()):
        job.wait_for_calls(1)
        signals.wake()
        job.wait_for_calls(2)
    assert signals.waits[0] == ("tests", 0.25)


def test_an_idle_wait_that_fails_backs_off_like_the_job() -> None:
    failures = [RuntimeError("cannot read the next due time")] * 2

    def idle() -> float:
        if failures:
            raise failures.pop()
        return LONG

    job = Script()
    stop = RecordingStop()
    with running(loop(job, idle=idle), Wakeups(), stop):
        job.wait_for_calls(3)
    assert stop.pauses == [1.0, 2.0]
