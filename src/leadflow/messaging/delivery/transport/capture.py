"""Delivery into memory: the journey simulator and tests read what would have been sent."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from leadflow.messaging.delivery.transport.base import Outcome, Outgoing


class CaptureTransport:
    """Keeps every message in :attr:`sent` (in the order delivered) and reports it ``sent``."""

    description = "capture (in memory, nothing leaves the process)"

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []
        self._lock = threading.Lock()

    def send_many(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        with self._lock:
            self.sent.extend(messages)
        return [Outcome("sent", None, "captured") for _ in messages]

    def snapshot(self) -> list[Outgoing]:
        """A copy of :attr:`sent`, safe to iterate while other threads keep sending."""
        with self._lock:
            return list(self.sent)

    def clear(self) -> None:
        with self._lock:
            self.sent.clear()

    def close(self) -> None:
        pass
