"""SMTP servers that note when each message arrived, for ``bench.latency``.

A message's sequence number travels in its subject (``Order <n> received``). Two receivers:

* ``smtp-sink`` (Debian's postfix, in C): every message is dumped to its own file in memory; the
  file's modification time is the moment the last byte arrived. It costs the shared cores little.
* ``aiosmtpd`` in its own process: notes ``time.time()`` in ``handle_DATA``. It costs ~0.3 ms of CPU a
  message in Python, on the same two cores as the system under test.

Both offer PIPELINING, as postfix and the big providers do.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

SUBJECT = re.compile(rb"Subject: Order (\d+) received")
SMTP_SINK = Path("/usr/sbin/smtp-sink")
SHM = Path("/dev/shm")  # in memory: 1,000 files a second must not queue behind the disk


class Sink(Protocol):
    def received(self) -> int: ...

    def arrivals(self) -> dict[int, float]: ...

    def stop(self) -> None: ...


def _serve_aiosmtpd(port: int, arrivals: Any, count: Any, ready: Any, stop: Any) -> None:
    """The arrivals stay in this process until ``stop``, then travel at once; only a shared counter
    moves per message."""
    from aiosmtpd.controller import Controller

    noted: list[tuple[int, float]] = []

    class Handler:
        async def handle_EHLO(  # noqa: N802 -- offer PIPELINING
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            found = SUBJECT.search(envelope.original_content or envelope.content)
            if found:
                noted.append((int(found.group(1)), time.time()))
                with count.get_lock():
                    count.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    arrivals.put(noted)
    _ = asyncio


class AiosmtpdSink:
    def __init__(self, port: int) -> None:
        self._arrivals: Any = multiprocessing.Queue()
        self._count: Any = multiprocessing.Value("i", 0)
        ready, self._stop = multiprocessing.Event(), multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_serve_aiosmtpd, args=(port, self._arrivals, self._count, ready, self._stop)
        )
        self._process.start()
        if not ready.wait(10):
            raise RuntimeError("aiosmtpd did not start")
        self._noted: dict[int, float] | None = None

    def received(self) -> int:
        return int(self._count.value)

    def arrivals(self) -> dict[int, float]:
        if self._noted is None:
            self._stop.set()
            self._noted = {}
            for number, at in self._arrivals.get(timeout=60):
                self._noted.setdefault(number, at)
            self._process.join(10)
        return self._noted

    def stop(self) -> None:
        if self._noted is None:
            self._stop.set()
            self._process.terminate()
        self._process.join(10)


class SmtpSinkFiles:
    """postfix's ``smtp-sink -d``: one dump file per message, its mtime the arrival.

    The folder is in memory (``/dev/shm``): on disk, creating 1,000 files a second stalled the sink
    for a second at a time (and slowed PostgreSQL's fsyncs on the same disk). It is world-writable
    because smtp-sink, run as root, writes as ``nobody``.
    """

    def __init__(self, port: int) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="leadflow-sink-", dir=SHM if SHM.is_dir() else None))
        os.chmod(self.folder, 0o777)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self._process = subprocess.Popen(
            [str(SMTP_SINK), *user, "-d", f"{self.folder}/%H%M%S.", f"127.0.0.1:{port}", "1000"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def received(self) -> int:
        return sum(1 for _ in os.scandir(self.folder))

    def arrivals(self) -> dict[int, float]:
        noted: dict[int, float] = {}
        for entry in os.scandir(self.folder):
            found = SUBJECT.search(Path(entry.path).read_bytes())
            if found:
                noted.setdefault(int(found.group(1)), entry.stat().st_mtime_ns / 1e9)
        return noted

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(kind: str, port: int) -> Sink:
    if kind == "smtp-sink":
        if not SMTP_SINK.exists():
            raise SystemExit("install Debian's postfix for smtp-sink, or pass --smtp aiosmtpd")
        return SmtpSinkFiles(port)
    return AiosmtpdSink(port)
