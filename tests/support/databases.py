"""Fresh databases for one test run: a SQLite file and a PostgreSQL database, both migrated."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from leadflow.kernel.db import Database
from leadflow.kernel.migrate import upgrade
from leadflow.tables import metadata

ADMIN_URL = os.environ.get("LEADFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("LEADFLOW_REQUIRE_POSTGRES") == "1"


def postgres_available() -> bool:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def create_postgres_database(template: str | None = None) -> str:
    """A new database, empty or a copy of the database ``template``; returns its SQLAlchemy URL."""
    name = f"leadflow_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    base = sa.make_url(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return base.set(database=name).render_as_string(hide_password=False)


_TEMPLATES: dict[str, str] = {}


def migrated_copy(kind: str, directory: Path) -> str:
    """A new migrated database of ``kind`` (``sqlite``: a file in ``directory``): a copy of one this
    process migrated once. A live server's ``leadflow migrate`` subprocess costs ~3 s (importing
    leadflow, then 27 migrations); the copy a few milliseconds. What ``leadflow migrate`` itself does is
    tested where it is the subject (the README and newcomer tests, ``test_cli``)."""
    if kind == "sqlite":
        template = _TEMPLATES.get(kind)
        if template is None:
            path = Path(tempfile.mkdtemp(prefix="leadflow-template-")) / "template.db"
            migrated(f"sqlite+pysqlite:///{path}")
            assert not path.with_name(path.name + "-wal").exists(), "the template's WAL was not checkpointed"
            template = _TEMPLATES[kind] = str(path)
            _TEMPLATE_DIRS.append(path.parent)
            atexit.register(drop_templates)
        target = directory / "leadflow-test.db"
        shutil.copyfile(template, target)
        return f"sqlite+pysqlite:///{target}"
    template = _TEMPLATES.get(kind)
    if template is None:
        url = migrated(create_postgres_database())
        template = _TEMPLATES[kind] = str(sa.make_url(url).database)
        _TEMPLATE_URLS.append(url)
        atexit.register(drop_templates)  # and at the session's end (conftest), which xdist workers reach
    return create_postgres_database(template)


_TEMPLATE_URLS: list[str] = []
_TEMPLATE_DIRS: list[Path] = []


def drop_templates() -> None:
    """Drop the templates this process made, PostgreSQL databases and SQLite folders (idempotent; at
    the session's end: xdist's workers end without running ``atexit``)."""
    while _TEMPLATE_URLS:
        drop_postgres_database(_TEMPLATE_URLS.pop())
    _TEMPLATES.pop("postgresql", None)
    while _TEMPLATE_DIRS:
        shutil.rmtree(_TEMPLATE_DIRS.pop(), ignore_errors=True)
    _TEMPLATES.pop("sqlite", None)


def drop_orphans() -> list[str]:
    """Drop the test databases of processes that no longer run (a run killed, or a worker that ended
    before its clean-up): ``leadflow_test_<pid>_<hex>``, made on this machine by
    :func:`create_postgres_database`. Returns their names."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        names = [
            str(name)
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname ~ '^leadflow_test_[0-9]+_[0-9a-f]{8}$'"
            )
        ]
    dropped = []
    for name in names:
        pid = int(name.split("_")[2])
        try:
            os.kill(pid, 0)
            continue  # its process still runs
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # another user's process
        base = sa.make_url(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        drop_postgres_database(base.set(database=name).render_as_string(hide_password=False))
        dropped.append(name)
    return dropped


def drop_postgres_database(url: str) -> None:
    forget(url)
    name = sa.make_url(url).database
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def sqlite_url(directory: Path) -> str:
    return f"sqlite+pysqlite:///{directory / 'leadflow-test.db'}"


def migrated(url: str) -> str:
    db = Database(url)
    try:
        upgrade(db)
    finally:
        db.dispose()
    return url


_OPEN: dict[str, Database] = {}


def empty_tables(url: str) -> None:
    """Remove every row (but the migration marker) so each test starts from an empty schema: one
    round trip of ``DELETE``s on PostgreSQL (a DELETE of a few rows is ~30 times quicker than TRUNCATE
    there), over a connection kept for the session."""
    db = _OPEN.get(url)
    if db is None:
        db = _OPEN[url] = Database(url)
    deletes = [f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables)]
    with db.write() as conn:
        if db.is_sqlite:
            for statement in deletes:
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql("DELETE FROM sqlite_sequence") if _has_sequence(conn) else None
        else:
            sequences = "SELECT setval(c.oid, 1, false) FROM pg_class c WHERE c.relkind = 'S'"
            conn.exec_driver_sql("; ".join([*deletes, sequences]))


def forget(url: str) -> None:
    """Close the kept connection to a database about to be dropped."""
    db = _OPEN.pop(url, None)
    if db is not None:
        db.dispose()


def _has_sequence(conn: sa.Connection) -> bool:
    return (
        conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").first() is not None
    )


def skip_or_fail_without_postgres() -> None:
    message = f"PostgreSQL is not reachable at {ADMIN_URL}"
    if REQUIRE_POSTGRES:
        pytest.fail(message + " and LEADFLOW_REQUIRE_POSTGRES=1", pytrace=False)
    pytest.skip(message)
