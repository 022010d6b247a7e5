"""The private database a simulation runs in: of the installation's kind, made for it and dropped after.

* A SQLite installation simulates in a SQLite file in memory-backed storage (``/dev/shm`` when it has
  room), removed afterwards.
* A PostgreSQL installation simulates in a new database on the same server (``leadflow_sim_`` and a
  random suffix), dropped afterwards, so the engine's SQL runs as it does in production. A database
  rather than a schema: advisory locks and ``NOTIFY`` channels belong to a database, so a simulation can
  neither hold the real pipeline's locks nor wake its workers, and no unqualified name can fall through
  to a real table.
* A role that may not create databases (no ``CREATEDB``) simulates on SQLite instead, and the result
  says so (:attr:`Scratch.note`).

A process killed during a simulation leaves its ``leadflow_sim_*`` database behind; it holds only the
copied configuration and the made-up contact, and can be dropped at any time.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from leadflow.kernel.db import Database, create_database, drop_database

PREFIX = "leadflow_sim_"
INSUFFICIENT_PRIVILEGE = "42501"


@dataclass(frozen=True)
class Scratch:
    url: str
    kind: str  # sqlite | postgresql
    note: str | None = None


@contextmanager
def database(db: Database) -> Iterator[Scratch]:
    """A new, empty database for one simulation (no tables yet), removed when the block ends."""
    if db.is_sqlite:
        with _sqlite() as url:
            yield Scratch(url, "sqlite")
        return
    name = f"{PREFIX}{secrets.token_hex(8)}"
    if not _created(db, name):
        note = "simulated on SQLite: the database role may not create a scratch database (CREATEDB)"
        with _sqlite() as url:
            yield Scratch(url, "sqlite", note)
        return
    try:
        url = sa.make_url(db.url).set(database=name).render_as_string(hide_password=False)
        yield Scratch(url, "postgresql")
    finally:
        drop_database(db, name)


def _created(db: Database, name: str) -> bool:
    try:
        create_database(db, name)
    except sa_exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) != INSUFFICIENT_PRIVILEGE:
            raise
        return False
    return True


@contextmanager
def _sqlite() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="leadflow-sim-", dir=_scratch_dir())
    try:
        yield f"sqlite+pysqlite:///{folder}/sim.db"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _scratch_dir() -> str | None:
    return "/dev/shm" if shutil.disk_usage("/dev/shm").free > 64 * 2**20 else None
