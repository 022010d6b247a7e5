"""Background work in threads: the event processor, the journey executor, the email and webhook
deliverers, the connectors' sync, CSV imports, and the scheduler. Every loop but the scheduler's is a
:class:`~leadflow.kernel.worker_loop.WorkerLoop` waiting on its signal channel, so new work starts at
once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial

from leadflow.connectors import service as connectors
from leadflow.contacts import import_jobs
from leadflow.contacts.processor import EventProcessor
from leadflow.events.ingest import CHANNEL as EVENTS
from leadflow.journeys.executor import Executor
from leadflow.kernel.context import AppContext
from leadflow.messaging.delivery.deliverer import Deliverer, deliverer
from leadflow.runtime import scheduler
from leadflow.webhooks.deliverer import WebhookDeliverer

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, ctx: AppContext, *, concurrency: int = 1) -> None:
        self.ctx = ctx
        self.concurrency = max(1, concurrency)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        _ = self.ctx.secret_key  # resolved once, before any worker transaction needs it
        self.ctx.signals.listen()
        for index in range(self.concurrency):
            self._spawn(lambda: self._guard(EventProcessor(self.ctx).run), f"leadflow-worker-{index}")
        self._spawn(lambda: self._guard(Executor(self.ctx).run), "leadflow-journeys")
        email = deliverer(self.ctx)
        for index in range(self.ctx.settings.email_threads):
            sender = email if index == 0 else Deliverer(self.ctx, share=email)
            self._spawn(partial(self._guard, sender.run), f"leadflow-email-{index}")
        self._spawn(lambda: self._guard(WebhookDeliverer(self.ctx).run), "leadflow-webhooks")
        self._spawn(lambda: self._guard(connectors.ConnectorWorker(self.ctx).run), "leadflow-connectors")
        self._spawn(lambda: self._guard(partial(import_jobs.run, self.ctx)), "leadflow-imports")
        self._spawn(lambda: scheduler.run(self.ctx, self._stop), "leadflow-scheduler")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _guard(self, loop: Callable[[threading.Event], None]) -> None:
        """Run one loop (a :class:`~leadflow.kernel.worker_loop.WorkerLoop`, which handles its own
        errors) until stopped; this is the last guard."""
        try:
            loop(self._stop)
        except Exception:  # pragma: no cover
            log.exception("worker thread stopped")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for channel in (EVENTS, "journeys", "email", "webhooks", import_jobs.CHANNEL, connectors.CHANNEL):
            self.ctx.signals.wake(channel)
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def wait(self) -> None:
        """Block until stopped (``leadflow worker``)."""
        while not self._stop.wait(1.0):
            pass
