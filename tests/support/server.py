"""A real ``leadflow serve`` in a subprocess, on a free port, against a fresh database."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.http import bearer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    database_url: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    admin_key: str = ""
    write_key: str = ""
    banner: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LEADFLOW_DATABASE_URL": self.database_url,
            "LEADFLOW_PORT": str(self.port),
            "LEADFLOW_LOG_LEVEL": "warning",
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "leadflow", "migrate"], env=self._env(), check=True, capture_output=True
        )

    def start(self) -> LiveServer:
        with (self.workdir / f"server-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "leadflow", "serve"],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        self._wait_healthy()
        text = self.log()
        if not self.admin_key and "first start" in text:
            self.banner = text
            self.admin_key = re.search(r"admin key \(REST API, all scopes\): (\S+)", text).group(1)  # type: ignore[union-attr]
            self.write_key = re.search(r"write key \(Segment tracking API\): (\S+)", text).group(1)  # type: ignore[union-attr]
        return self

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.workdir.glob(f"server-{self.port}.log"))
        )

    def _wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(self.admin_key), timeout=30)

    def wait_processed(self, timeout: float = 60.0) -> dict[str, object]:
        """Until the worker has applied every stored event."""
        deadline = time.monotonic() + timeout
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{self.url}/healthz", timeout=5).json()
            if health["pending_events"] == 0:
                return health
            time.sleep(0.1)
        raise AssertionError(f"events still waiting: {health}")
