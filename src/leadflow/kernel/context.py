"""The application context: the handful of shared objects every service needs, built once per process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from leadflow.kernel import instance
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock
from leadflow.kernel.db import Database
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.settings import Settings
from leadflow.kernel.signals import Signals


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
    caches: dict[str, Any] = field(default_factory=dict, repr=False)
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

    def close(self) -> None:
        self.signals.close()
        self.db.dispose()
