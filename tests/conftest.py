"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import hypothesis
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.auth import service as keys
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from tests.peers import saas
from tests.peers.sns import SnsPeer
from tests.support import databases

BACKENDS = ("sqlite", "postgresql")

# CI explores the same examples on every run (a failure there is reproducible); locally each run
# explores new ones.
hypothesis.settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis.settings.load_profile(os.environ.get("LEADFLOW_HYPOTHESIS_PROFILE", "default"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """The controller (not an xdist worker) drops test databases that dead runs left behind."""
    if not hasattr(session.config, "workerinput") and databases.postgres_available():
        databases.drop_orphans()


def pytest_sessionfinish(session: pytest.Session) -> None:
    databases.drop_templates()
    saas.remove_tls_files()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    if not databases.postgres_available():
        yield None
        return
    url = databases.migrated(databases.create_postgres_database())
    yield url
    databases.drop_postgres_database(url)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return databases.migrated(databases.sqlite_url(tmp_path_factory.mktemp("sqlite")))


def _skip_sqlite_if_postgres_only(request: pytest.FixtureRequest) -> None:
    if request.param == "sqlite" and request.node.get_closest_marker("postgres_only") is not None:
        pytest.skip("PostgreSQL only (@pytest.mark.postgres_only)")


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, sqlite_url: str, postgres_url: str | None) -> str:
    """A migrated, empty database of each kind (the test runs once per backend; once on PostgreSQL
    with ``@pytest.mark.postgres_only``)."""
    _skip_sqlite_if_postgres_only(request)
    if request.param == "postgresql":
        if postgres_url is None:
            databases.skip_or_fail_without_postgres()
        url = postgres_url
    else:
        url = sqlite_url
    assert url is not None
    databases.empty_tables(url)
    return url


@pytest.fixture(params=BACKENDS)
def own_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database of the test's own, never analysed, dropped afterwards. For a test that reads
    query plans, or makes PostgreSQL keep statistics: in the process's shared database either depends on
    what earlier tests left (a module opts in with ``def database_url(own_database_url)``)."""
    _skip_sqlite_if_postgres_only(request)
    if request.param == "postgresql" and not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.migrated_copy(request.param, tmp_path)
    yield url
    if request.param == "postgresql":
        databases.drop_postgres_database(url)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def settings(database_url: str, request: pytest.FixtureRequest) -> Settings:
    """The test settings; ``@pytest.mark.settings(name=value, ...)`` changes some for one test."""
    made = Settings(
        database_url=database_url,
        secret_key="test-secret",
        ingest_rate_limit=0,
        api_rate_limit=0,
        brand_address="1 Main St, Springfield",  # marketing journeys and broadcasts need one to publish
    )
    marker = request.node.get_closest_marker("settings")
    return made if marker is None else made.model_copy(update=marker.kwargs)


@pytest.fixture
def sns_peer(clock: VirtualClock) -> Iterator[SnsPeer]:
    """Amazon SNS signing messages, its certificate served on 127.0.0.1 (admit it with
    ``@pytest.mark.settings(**LOCAL_CERTS)``, see :mod:`tests.peers.sns`)."""
    with SnsPeer(clock) as peer:
        yield peer


@pytest.fixture
def ctx(settings: Settings, clock: VirtualClock, request: pytest.FixtureRequest) -> Iterator[AppContext]:
    """The application context; afterwards, no event may have failed processing unless the test says so
    (``@pytest.mark.processing_errors``): the processor isolates failures, which must not hide bugs.
    Nor may any request have been answered ``500 internal_error`` unless the test says so
    (``@pytest.mark.internal_errors``): the API answers an unexpected exception instead of raising it,
    so without this check a test client would no longer see a bug."""
    context = build_context(settings, clock=clock)
    yield context
    if request.node.get_closest_marker("internal_errors") is None:
        answered = context.metrics.registry.get_sample_value(
            "leadflow_http_errors_total", {"code": "internal_error"}
        )
        assert not answered, f"{answered:.0f} request(s) answered 500 internal_error (see the log)"
    if request.node.get_closest_marker("processing_errors") is None:
        with context.db.read() as conn:
            failed = conn.execute(
                sa.select(events.c.event, events.c.error).where(events.c.error.is_not(None))
            ).all()
        assert not failed, f"events failed processing: {failed}"
    context.close()


@pytest.fixture
def processor(ctx: AppContext) -> EventProcessor:
    return EventProcessor(ctx)


@pytest.fixture
def make_key(ctx: AppContext) -> Callable[..., str]:
    def make(*scopes: str, name: str = "test") -> str:
        with ctx.db.write() as conn:
            _, plaintext = keys.create_key(
                conn, ctx.clock, name=name, scopes=scopes or ("admin",), actor="test"
            )
        return plaintext

    return make


@pytest.fixture
def client(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, run_worker=False)) as test_client:
        yield test_client


@pytest.fixture
def admin_key(make_key: Callable[..., str]) -> str:
    return make_key("admin")


@pytest.fixture
def write_key(make_key: Callable[..., str]) -> str:
    return make_key("ingest")


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
