"""Wake-ups for workers when new work is committed.

In one process a :class:`threading.Event` per channel is set. On PostgreSQL, other processes (and
machines) learn of new work through ``NOTIFY``: a writer calls :meth:`Signals.announce` after its commit
and one background thread per process sends at most one ``NOTIFY`` per channel every few milliseconds,
so the request path never pays a round trip for it. Workers ``LISTEN`` on a thread of their own, and
still poll on a timer, so a lost wake-up only costs latency, never work.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from leadflow.kernel.db import Database

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "leadflow_"
CHANNELS = ("events", "segments", "journeys", "email", "webhooks", "imports")
NOTIFY_EVERY = 0.01  # seconds: the most a cross-process wake-up is delayed


def _statement(command: str, channel: str) -> sql.Composed:
    """``NOTIFY``/``LISTEN`` with the channel's name quoted as an identifier (it cannot be a parameter)."""
    return sql.SQL(command + " {}").format(sql.Identifier(CHANNEL_PREFIX + channel))


class Signals:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._events: dict[str, threading.Event] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listening = False
        self._outgoing: set[str] = set()
        self._pending = threading.Event()
        self._notifier: threading.Thread | None = None

    def _event(self, channel: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(channel, threading.Event())

    def announce(self, channel: str) -> None:
        """New work on ``channel`` has been committed: wake local waiters now, other processes soon."""
        self.wake(channel)
        if self._db.is_sqlite:
            return
        with self._lock:
            self._outgoing.add(channel)
            if self._notifier is None:
                self._notifier = self._spawn(self._notify_loop, "leadflow-notify")
        self._pending.set()

    def wake(self, channel: str) -> None:
        """Wake local waiters only (shutting down, tests)."""
        with self._lock:
            self._generations[channel] = self._generations.get(channel, 0) + 1
        self._event(channel).set()

    def reliable(self) -> bool:
        """Whether every change made elsewhere reaches this process as a signal (PostgreSQL, listening);
        only then may a cache rely on :meth:`generation` alone."""
        return self._listening

    def generation(self, channel: str) -> int:
        """How many times ``channel`` has been signalled here: a cache of what the channel announces
        is current while this number stays the same."""
        with self._lock:
            return self._generations.get(channel, 0)

    def wait(self, channel: str, timeout: float) -> bool:
        event = self._event(channel)
        woken = event.wait(timeout)
        event.clear()
        return woken

    def listen(self) -> None:
        """Start the LISTEN thread for every channel (PostgreSQL only; idempotent)."""
        with self._lock:
            if self._db.is_sqlite or self._listening:
                return
            self._listening = True
        self._spawn(lambda: self._listen_loop(list(CHANNELS)), "leadflow-listen")

    def _spawn(self, target: object, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)
        return thread

    def _url(self) -> str:
        return self._db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def _notify_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url(), autocommit=True) as conn:
                    while not self._stop.is_set():
                        if not self._pending.wait(1.0):
                            continue
                        self._pending.clear()
                        with self._lock:
                            channels, self._outgoing = self._outgoing, set()
                        for channel in channels:
                            conn.execute(_statement("NOTIFY", channel))
                        self._stop.wait(NOTIFY_EVERY)
            except psycopg.Error as exc:
                log.warning("NOTIFY connection lost (%s); retrying", exc)
                self._stop.wait(1.0)

    def _listen_loop(self, channels: list[str]) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url(), autocommit=True) as conn:
                    for channel in channels:
                        conn.execute(_statement("LISTEN", channel))
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.2):
                            self.wake(note.channel.removeprefix(CHANNEL_PREFIX))
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); retrying", exc)
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._pending.set()
        for thread in self._threads:
            thread.join(timeout=3)
        self._threads.clear()
