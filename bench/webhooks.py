"""Outgoing webhook throughput against a minimal local receiver, with a plain load generator as ceiling.

    python -m bench.webhooks [--deliveries 50000] [--backend postgresql|sqlite] [--processes 2]

The receiver runs in its own process: uvloop with httptools' parser, answering ``200`` with an empty
body to every POST and counting them (every 500th request is kept, to verify its signature). In the
same run a plain load generator (its own process, uvloop, 16 keep-alive connections, one request in
flight on each, no signing, no database) POSTs a body of the same size to it: its rate is the ceiling,
measured once before the deliveries are queued and once after they are delivered, and the higher of the
two is kept. Then one endpoint is registered (the real ``endpoints.create``, with its own secret), N
deliveries to it are queued through ``webhooks.service.enqueue_many`` and ``--processes`` worker
processes each run the real :class:`~leadflow.webhooks.deliverer.WebhookDeliverer` in its worker loop
(``run``) until every delivery is ``delivered``. A sample of what arrived is verified with the
``standardwebhooks`` library against the endpoint's secret.
Target: ≥ 2,000 deliveries/s and ≥ 0.3 of the ceiling, signature on. ``LEADFLOW_NETWORK_ALLOW`` is
``127.0.0.1`` for the bench only.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import multiprocessing
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httptools
import sqlalchemy as sa
import uvloop
from standardwebhooks.webhooks import Webhook

from bench.common import create_database, drop_database, machine
from bench.email import free_port
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime import collector
from leadflow.runtime.context import build_context
from leadflow.webhooks import endpoints
from leadflow.webhooks import service as webhooks
from leadflow.webhooks.deliverer import WebhookDeliverer
from leadflow.webhooks.models import webhook_deliveries

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ncontent-type: text/plain\r\n\r\n"
SAMPLE_EVERY = 500
CONNECTIONS = 16
PAYLOAD = {"contact": {"id": "01J0000000000000000000000", "email": "person@example.com"}, "plan": "pro"}


# --- the receiver -----------------------------------------------------------------------------------


def _receive(port: int, count: Any, ready: Any, stop: Any, samples: Any) -> None:
    """Serve until ``stop``; then put the kept requests (headers, body) on ``samples``."""
    kept: list[tuple[dict[str, str], bytes]] = []

    class Receiver(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.headers: dict[str, str] = {}
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.transport.close()

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers[name.decode().lower()] = value.decode()

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            with count.get_lock():
                count.value += 1
                number = count.value
            if number % SAMPLE_EVERY == 0 and "webhook-signature" in self.headers:
                kept.append((self.headers, b"".join(self.body)))
            self.headers, self.body = {}, []
            self.transport.write(RESPONSE)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
        ready.set()
        await loop.run_in_executor(None, stop.wait)
        server.close()

    uvloop.run(serve())
    samples.put(kept)


class Receiver:
    def __init__(self, port: int) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.count: Any = spawn.Value("q", 0)
        self._samples: Any = spawn.Queue()
        ready, self._stop = spawn.Event(), spawn.Event()
        self._process = spawn.Process(
            target=_receive, args=(port, self.count, ready, self._stop, self._samples)
        )
        self._process.start()
        if not ready.wait(20):
            raise RuntimeError("the receiver did not start")

    def received(self) -> int:
        return int(self.count.value)

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(10)

    def stop(self) -> list[tuple[dict[str, str], bytes]]:
        self._stop.set()
        kept: list[tuple[dict[str, str], bytes]] = self._samples.get(timeout=30)
        self._process.join(10)
        return kept


# --- the plain load generator -----------------------------------------------------------------------


def _generate(port: int, total: int, body: bytes, result: Any) -> None:
    """POST ``total`` requests over :data:`CONNECTIONS` keep-alive connections; the rate on ``result``."""
    request = (
        b"POST /hook HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"user-agent: load/1\r\nwebhook-id: msg_0\r\nwebhook-timestamp: 0\r\n"
        + f"content-length: {len(body)}\r\n\r\n".encode()
        + body
    )
    left = [total]

    class Client(asyncio.Protocol):
        def __init__(self, done: asyncio.Future[None]) -> None:
            self.done = done
            self.buffer = b""

        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.send()

        def send(self) -> None:
            if left[0] <= 0:
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            left[0] -= 1
            self.transport.write(request)

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while len(self.buffer) >= len(RESPONSE):  # the receiver's answer has a fixed length
                self.buffer = self.buffer[len(RESPONSE) :]
                self.send()

    async def run() -> float:
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in range(CONNECTIONS)]
        started = time.perf_counter()
        for future in done:
            await loop.create_connection(functools.partial(Client, future), "127.0.0.1", port)
        await asyncio.gather(*done)
        return total / (time.perf_counter() - started)

    result.put(uvloop.run(run()))


def ceiling(port: int, total: int, body: bytes) -> float:
    spawn = multiprocessing.get_context("spawn")
    result: Any = spawn.Queue()
    process = spawn.Process(target=_generate, args=(port, total, body, result), daemon=True)
    process.start()
    rate = float(result.get(timeout=600))
    process.join(10)
    return rate


# --- the deliveries ---------------------------------------------------------------------------------


def context(url: str) -> AppContext:
    settings = Settings(database_url=url, secret_key="bench", network_allow="127.0.0.1")
    return build_context(settings, clock=SystemClock())


def queue(ctx: AppContext, port: int, count: int) -> str:
    """Register the endpoint and queue ``count`` deliveries to it; returns the endpoint's secret."""
    view, secret = endpoints.create(
        ctx, url=f"http://127.0.0.1:{port}/hook", event_types=["*"], actor="bench"
    )
    now = ctx.clock.now()
    for start in range(0, count, 5000):
        rows = [
            {
                "key": f"bench:{n}",
                "url": view["url"],
                "event": "contact.updated",
                "payload": PAYLOAD | {"n": n},
                "at": now,
                "endpoint_id": view["id"],
            }
            for n in range(start, min(count, start + 5000))
        ]
        with ctx.db.write() as conn:
            webhooks.enqueue_many(conn, ctx, rows)
    return secret


def deliver_process(url: str, go: Any, stop: Any) -> None:
    """One worker process: its own context and client, the deliverer's worker loop until ``stop``."""
    ctx = context(url)
    collector.tune()  # as ``leadflow worker`` does once started
    with WebhookDeliverer(ctx) as deliverer:
        deliverer.signer()  # outside the measured time
        go.wait()
        halt = threading.Event()
        runner = threading.Thread(target=deliverer.run, args=(halt,))
        runner.start()
        stop.wait()
        halt.set()
        runner.join(30)
    ctx.close()


def waiting(ctx: AppContext) -> int:
    """Deliveries not yet recorded as sent (read through the partial index of queued rows)."""
    with ctx.db.read() as conn:
        query = sa.select(sa.func.count()).where(webhook_deliveries.c.status == webhooks.QUEUED)
        return int(conn.execute(query).scalar_one())


def deliver_all(ctx: AppContext, url: str, count: int, processes: int, receiver: Receiver) -> float:
    """Every delivery sent and recorded: the receiver's counter is watched until all arrived (a count
    of the table every 0.1 s took a tenth of a core from what is measured), then the database until
    none is left queued."""
    spawn = multiprocessing.get_context("spawn")
    go, stop = spawn.Event(), spawn.Event()
    children = [
        spawn.Process(target=deliver_process, args=(url, go, stop), daemon=True) for _ in range(processes)
    ]
    for child in children:
        child.start()
    time.sleep(4)  # imports and connections, outside the measured time
    started = time.perf_counter()
    go.set()
    first = receiver.received()
    while receiver.received() - first < count:
        time.sleep(0.05)
    while waiting(ctx):
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    stop.set()
    for child in children:
        child.join(60)
    return count / elapsed


def verify(kept: list[tuple[dict[str, str], bytes]], secret: str) -> int:
    """Every kept request's signature checks with the endpoint's secret (raises otherwise)."""
    webhook = Webhook(secret)
    for headers, body in kept:
        webhook.verify(body, headers)
    return len(kept)


def one_run(backend: str, count: int, processes: int, workdir: Path) -> None:
    port = free_port()
    receiver = Receiver(port)
    url = create_database(backend, workdir)
    try:
        size = len(
            f'{{"type":"contact.updated","timestamp":"{dt.datetime.now(dt.UTC).isoformat()}","data":'
            f'{{"contact":{{"id":"01J0000000000000000000000","email":"person@example.com"}},'
            f'"plan":"pro","n":12345}}}}'
        )
        body = b"x" * size
        before = ceiling(port, count, body)
        ctx = context(url)
        started = time.perf_counter()
        secret = queue(ctx, port, count)
        queued = time.perf_counter() - started
        received_before = receiver.received()
        rate = deliver_all(ctx, url, count, processes, receiver)
        arrived = receiver.received() - received_before
        ctx.close()
        after = ceiling(port, count, body)
        checked = verify(receiver.stop(), secret)
        top = max(before, after)
        print(
            f"{backend}: queued {count:,} in {queued:.1f} s; delivered {count:,} at {rate:,.0f}/s "
            f"({processes} process(es)); the receiver saw {arrived:,} deliveries, {checked} sampled "
            f"signatures verified; plain load generator ceiling {top:,.0f}/s "
            f"(before {before:,.0f}, after {after:,.0f}); ratio {rate / top:.2f}"
        )
    finally:
        receiver.kill()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=50_000)
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--processes", type=int, default=2, help="deliverer processes (like workers)")
    args = parser.parse_args()
    print(machine(), "—", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    workdir = Path(tempfile.mkdtemp())
    try:
        one_run(args.backend, args.deliveries, args.processes, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
