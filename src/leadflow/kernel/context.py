"""The application context: the handful of shared objects every service needs, built once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from leadflow.kernel import instance
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock
from leadflow.kernel.db import Database
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.settings import Settings
from leadflow.kernel.signals import Signals

T = TypeVar("T")


class Slot(Generic[T]):
    """A place in every context for one object its owner makes once per process (a cache, a deliverer).

    The kernel knows no domain, so the context cannot have a field typed with a domain's class; the
    owner declares a module-level ``Slot`` instead, typed with what it holds and how to make it, and
    reads it with ``ctx.get(SLOT)``. The slot object itself is the key: no free strings, no collisions,
    and the type is checked. ``name`` only names it in messages.
    """

    __slots__ = ("lock", "make", "name")

    def __init__(self, name: str, make: Callable[[AppContext], T]) -> None:
        self.name = name
        self.make = make
        self.lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


@dataclass
class AppContext:
    settings: Settings
    db: Database
    clock: Clock
    bus: Bus
    metrics: Metrics
    signals: Signals
    #: A context for other settings (another database), built and wired like this one, its database
    #: holding every table: the simulator's scratch copy. Set by the composition root
    #: (``runtime.context.build_context``), which alone knows every domain.
    derive: Callable[[Settings, Clock], AppContext] | None = field(default=None, repr=False)
    _held: dict[Slot[Any], Any] = field(default_factory=dict, repr=False)
    _secret: str | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def secret_key(self) -> str:
        """``LEADFLOW_SECRET_KEY`` if set, else the one generated on first start and kept in the database.

        Read it outside any transaction: the first read may write the generated key.
        """
        with self._lock:
            if self._secret is None:
                configured = self.settings.secret_key
                self._secret = configured.get_secret_value() if configured else instance.secret_key(self.db)
            return self._secret

    def get(self, slot: Slot[T]) -> T:
        """What ``slot`` holds in this context, made on first use.

        Made once under the slot's lock: a second copy would be wasted (a transport's connection pool)
        or refused (metrics registered twice).
        """
        held = self._held
        if slot in held:
            return cast(T, held[slot])
        with slot.lock:
            if slot not in held:
                held[slot] = slot.make(self)
            return cast(T, held[slot])

    def put(self, slot: Slot[T], value: T) -> None:
        """Put ``value`` in ``slot`` in place of what its owner would make (a test's capturing deliverer)."""
        self._held[slot] = value

    def close(self) -> None:
        self.signals.close()
        self.db.dispose()
