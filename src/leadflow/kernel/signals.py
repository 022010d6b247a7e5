"""Wake-ups for workers when new work is committed.

In one process a :class:`threading.Event` per channel is set; on PostgreSQL the writer also sends
``NOTIFY`` in its transaction and each process runs one ``LISTEN`` thread, so a worker on another
machine wakes as soon as the commit lands. Workers still poll on a timer, so a lost wake-up only costs
latency, never work.
"""

from __future__ import annotations

import logging
import threading

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import Database

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "leadflow_"


class Signals:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None

    def _event(self, channel: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(channel, threading.Event())

    def publish(self, conn: Connection, channel: str) -> None:
        """Announce new work on ``channel``; call inside the transaction that creates it."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL_PREFIX + channel})

    def wake(self, channel: str) -> None:
        """Wake local waiters; call after the commit."""
        self._event(channel).set()

    def wait(self, channel: str, timeout: float) -> bool:
        event = self._event(channel)
        woken = event.wait(timeout)
        event.clear()
        return woken

    def listen(self, channels: list[str]) -> None:
        """Start the LISTEN thread (PostgreSQL only; idempotent)."""
        if self._db.is_sqlite or self._listener is not None:
            return
        self._listener = threading.Thread(
            target=self._listen, args=(channels,), name="leadflow-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, channels: list[str]) -> None:
        url = self._db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    for channel in channels:
                        conn.execute(f"LISTEN {CHANNEL_PREFIX}{channel}")
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self.wake(note.channel.removeprefix(CHANNEL_PREFIX))
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); retrying", exc)
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.join(timeout=3)
            self._listener = None
