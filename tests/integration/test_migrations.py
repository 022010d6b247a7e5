"""Migrating an empty database yields exactly the schema the models declare, on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from leadflow.kernel.context import AppContext
from leadflow.kernel.db import Database
from leadflow.kernel.migrate import current_revision, head_revision, is_up_to_date, upgrade
from leadflow.tables import metadata
from tests.support import databases


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A brand-new database that no migration has touched."""
    postgres = request.param == "postgresql"
    if postgres and not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.create_postgres_database() if postgres else databases.sqlite_url(tmp_path)
    db = Database(url)
    yield db
    db.dispose()
    if postgres:
        databases.drop_postgres_database(url)


def test_migrations_produce_exactly_the_models_schema(empty_database: Database) -> None:
    assert not is_up_to_date(empty_database)
    upgrade(empty_database)
    assert current_revision(empty_database) == head_revision(empty_database)
    with empty_database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, metadata) == []


def test_migrating_twice_is_harmless(empty_database: Database) -> None:
    upgrade(empty_database)
    upgrade(empty_database)
    assert is_up_to_date(empty_database)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    db = Database(databases.sqlite_url(tmp_path))
    try:
        upgrade(db)
        with db.read() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()


def test_first_start_creates_two_keys_exactly_once(ctx: AppContext) -> None:
    from leadflow.auth import service as keys
    from leadflow.runtime.bootstrap import first_start

    found = first_start(ctx)
    assert found is not None
    assert first_start(ctx) is None
    with ctx.db.read() as conn:
        principals = [keys.lookup(conn, found.admin_key), keys.lookup(conn, found.write_key)]
    assert [p.scopes if p else None for p in principals] == [("admin",), ("ingest",)]
