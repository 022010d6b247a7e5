"""The in-process message bus for domain events.

A domain publishes a fact (``ContactsMerged``, ``SegmentEntered`` …) inside the transaction that made
it true; the handlers other domains subscribed run in that same transaction, so either everything the
fact implies is committed or none of it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

M = TypeVar("M")
Handler = Callable[[Connection, Any], None]


class Bus:
    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = defaultdict(list)

    def subscribe(self, kind: type[M], handler: Callable[[Connection, M], None]) -> None:
        self._handlers[kind].append(handler)

    def publish(self, conn: Connection, message: object) -> None:
        for handler in self._handlers.get(type(message), ()):
            handler(conn, message)
