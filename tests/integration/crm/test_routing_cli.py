"""``leadflow crm routing list|add`` and ``leadflow crm sla list``, on both databases."""

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


def test_routing_add_and_list_then_sla_list(cli: CliRunner, identify: Callable[..., None]) -> None:
    added = cli.invoke(app, ["crm", "users", "add", "--name", "Sam", "--email", "sam@biz.example"])
    user_id = added.stdout.strip().splitlines()[-1]
    condition = '{"field": "traits.source", "op": "eq", "value": "ads"}'
    rule = cli.invoke(
        app, ["crm", "routing", "add", "--name", "Ads", "--user", user_id, "--condition", condition]
    )
    assert rule.exit_code == 0, rule.output
    rule_id = rule.stdout.strip().splitlines()[-1]
    listed = cli.invoke(app, ["crm", "routing", "list"], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert rule_id in listed.stdout
    assert f"user:{user_id}" in listed.stdout
    assert cli.invoke(app, ["crm", "routing", "add", "--name", "X", "--condition", "{"]).exit_code == 2
    both = cli.invoke(app, ["crm", "routing", "add", "--name", "X"])
    assert both.exit_code == 2
    assert "exactly one" in both.output
    empty = cli.invoke(app, ["crm", "sla", "list"], terminal_width=200)
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.startswith("contact\towner\tstate")
    assert cli.invoke(app, ["crm", "sla", "list", "--state", "nonsense"]).exit_code == 2
