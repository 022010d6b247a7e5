"""The ``leadflow`` command line, run in-process against both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.auth import service as keys
from leadflow.cli import app
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import Database
from leadflow.kernel.migrate import head_revision
from tests.support import databases
from tests.support.contacts import all_contacts


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.setenv("LEADFLOW_BRAND_ADDRESS", "1 Main St, Springfield")  # to publish marketing journeys
    return CliRunner()


def test_keys_create_prints_the_key_last_and_it_works(cli: CliRunner, ctx: AppContext) -> None:
    result = cli.invoke(app, ["keys", "create", "--name", "website", "--scopes", "ingest,read"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    with ctx.db.read() as conn:
        principal = keys.lookup(conn, key)
    assert principal is not None
    assert principal.scopes == ("ingest", "read")


def test_keys_create_refuses_unknown_scopes(cli: CliRunner, ctx: AppContext) -> None:
    result = cli.invoke(app, ["keys", "create", "--name", "x", "--scopes", "ingest,root"])
    assert result.exit_code == 2
    assert "unknown scope(s) root" in result.output
    with ctx.db.read() as conn:
        assert keys.count_keys(conn) == 0


def test_keys_list_and_revoke(cli: CliRunner, ctx: AppContext) -> None:
    key = (
        cli.invoke(app, ["keys", "create", "--name", "to-revoke", "--scopes", "read"])
        .stdout.strip()
        .splitlines()[-1]
    )
    listed = cli.invoke(app, ["keys", "list"], terminal_width=200)
    assert "to-revoke" in listed.stdout
    assert key not in listed.stdout
    with ctx.db.read() as conn:
        [view] = keys.list_keys(conn)
    revoked = cli.invoke(app, ["keys", "revoke", view.id])
    assert revoked.exit_code == 0
    with ctx.db.read() as conn:
        assert keys.lookup(conn, key) is None
    assert cli.invoke(app, ["keys", "revoke", "nope"]).exit_code == 2


def test_import_contacts_reports_rejected_rows(cli: CliRunner, ctx: AppContext, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("email,first_name,phone\nann@example.com,Ann,\nbad,Bad,\nbob@example.com,Bob,123\n")
    result = cli.invoke(app, ["import", "contacts", str(path)], terminal_width=200)
    assert result.exit_code == 1
    assert "3 rows: 1 created, 0 updated, 0 unchanged, 0 merged, 2 rejected" in result.stdout
    assert "invalid email address 'bad'" in result.stdout
    assert "invalid phone number '123'" in result.stdout
    assert [c["email"] for c in all_contacts(ctx)] == ["ann@example.com"]
    clean = tmp_path / "clean.csv"
    clean.write_text("email\ncarl@example.com\n")
    assert cli.invoke(app, ["import", "contacts", str(clean)]).exit_code == 0


def test_migrate_then_serve_refuses_an_unmigrated_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", databases.sqlite_url(tmp_path))
    runner = CliRunner()
    refused = runner.invoke(app, ["serve"])
    assert refused.exit_code == 2
    assert "leadflow migrate" in refused.output
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0
    assert (
        f"database at revision {head_revision(Database(databases.sqlite_url(tmp_path)))} (sqlite)"
        in migrated.stdout
    )


def test_journeys_simulate_a_shipped_file_without_installing_it(cli: CliRunner, ctx: AppContext) -> None:
    import json

    from leadflow.messaging.models import email_templates

    path = Path(__file__).parents[2] / "src/leadflow/journeys/templates/welcome-series.yaml"
    result = cli.invoke(app, ["journeys", "simulate", str(path), "--horizon", "10d", "--json"])
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.stdout)["timeline"]
    assert [m["step"] for m in timeline if m["email"]] == [
        "send-welcome",
        "send-choosing",
        "send-how-it-works",
        "send-consultation",
    ]
    with ctx.db.read() as conn:
        assert conn.execute(email_templates.select()).first() is None  # nothing was installed


def test_journeys_install_templates_then_webhooks_secret(cli: CliRunner, ctx: AppContext) -> None:
    result = cli.invoke(app, ["journeys", "install-templates", "birthday", "--publish"])
    assert result.exit_code == 0, result.output
    assert "birthday: installed, active" in result.output
    secret = cli.invoke(app, ["webhooks", "secret"])
    assert secret.exit_code == 0
    assert secret.stdout.strip().startswith("whsec_")
