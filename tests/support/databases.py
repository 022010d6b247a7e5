"""Fresh databases for one test run: a SQLite file and a PostgreSQL database, both migrated."""

from __future__ import annotations

import os
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


def create_postgres_database() -> str:
    """A new, empty database; returns its SQLAlchemy URL."""
    name = f"leadflow_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = sa.make_url(ADMIN_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    return base.set(database=name).render_as_string(hide_password=False)


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
