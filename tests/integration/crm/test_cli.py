"""``leadflow crm``: users and leads from the command line, on both databases."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from leadflow.cli import app


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    return CliRunner()


def test_users_add_and_list_then_leads_list_show_and_status(
    cli: CliRunner, identify: Callable[..., None]
) -> None:
    added = cli.invoke(app, ["crm", "users", "add", "--name", "Sam Seller", "--email", "sam@biz.example"])
    assert added.exit_code == 0, added.output
    user_id = added.stdout.strip().splitlines()[-1]
    listed = cli.invoke(app, ["crm", "users", "list"], terminal_width=200)
    assert user_id in listed.stdout
    assert "sam@biz.example" in listed.stdout
    bad = cli.invoke(
        app, ["crm", "users", "add", "--name", "X", "--email", "x@biz.example", "--timezone", "Nowhere"]
    )
    assert bad.exit_code == 2
    assert "unknown time zone" in bad.output

    identify({"u1": {"email": "ann@example.com", "first_name": "Ann"}})
    leads = cli.invoke(app, ["crm", "leads", "list"], terminal_width=200)
    assert leads.exit_code == 0, leads.output
    assert "ann@example.com" in leads.stdout
    assert "new" in leads.stdout
    refused = cli.invoke(app, ["crm", "leads", "status", "ann@example.com", "lost"])
    assert refused.exit_code == 2
    assert "needs a reason" in refused.output
    changed = cli.invoke(app, ["crm", "leads", "status", "ann@example.com", "lost", "--reason", "no budget"])
    assert changed.exit_code == 0, changed.output
    shown = cli.invoke(app, ["crm", "leads", "show", "ann@example.com"])
    assert '"status": "lost"' in shown.stdout
    assert '"reason": "no budget"' in shown.stdout
    assert cli.invoke(app, ["crm", "leads", "show", "nobody@example.com"]).exit_code == 2
