"""Shared pieces of the benchmarks: fresh databases, a live server, machine facts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import sqlalchemy as sa

from leadflow.kernel.db import Database
from leadflow.kernel.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("LEADFLOW_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // (1024 * 1024)
    return f"{os.cpu_count()} cores ({cpu}), {memory} GiB RAM, Python {platform.python_version()}"


def create_database(kind: str, workdir: Path) -> str:
    """A new, migrated database; its URL."""
    if kind == "sqlite":
        url = f"sqlite+pysqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    else:
        name = f"leadflow_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base = sa.make_url(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        url = base.set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    upgrade(db)
    db.dispose()
    return url


def drop_database(url: str) -> None:
    if url.startswith("sqlite"):
        return
    name = sa.make_url(url).database
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """A new, migrated database, dropped afterwards (PostgreSQL) or left in ``workdir`` (SQLite)."""
    url = create_database(kind, workdir)
    try:
        yield url
    finally:
        drop_database(url)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    admin_key: str
    write_key: str

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def start_server(
    database_url: str, port: int, workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Server:
    log_path = workdir / f"server-{port}.log"
    environment = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": database_url,
        "LEADFLOW_PORT": str(port),
        "LEADFLOW_LOG_LEVEL": "warning",
        "LEADFLOW_INGEST_RATE_LIMIT": "0",
        "LEADFLOW_API_RATE_LIMIT": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "leadflow", "serve", *args],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    text = log_path.read_text()
    admin = text.split("admin key (REST API, all scopes): ")[1].split()[0]
    write = text.split("write key (Segment tracking API): ")[1].split()[0]
    return Server(process=process, url=url, admin_key=admin, write_key=write)
