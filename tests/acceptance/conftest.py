from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import databases
from tests.support.server import LiveServer


def fresh_database(kind: str, workdir: Path) -> tuple[str, object]:
    if kind == "sqlite":
        return databases.sqlite_url(workdir), None
    if not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.create_postgres_database()
    return url, url


def migrated_database(kind: str, workdir: Path) -> tuple[str, object]:
    """:func:`fresh_database`, already migrated (a copy: see :func:`databases.migrated_copy`)."""
    if kind != "sqlite" and not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.migrated_copy(kind, workdir)
    return url, (None if kind == "sqlite" else url)


@pytest.fixture(params=["sqlite", "postgresql"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    """A migrated, freshly started server on its own new database."""
    url, to_drop = migrated_database(request.param, tmp_path)
    server = LiveServer(database_url=url, workdir=tmp_path, env=getattr(request, "param_env", {}))
    server.start()
    yield server
    server.stop()
    if to_drop:
        databases.drop_postgres_database(str(to_drop))
