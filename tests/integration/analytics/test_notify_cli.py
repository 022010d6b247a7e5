"""``leadflow analytics alerts ...`` (create a rule, list it, evaluate, list incidents, remove it) and
``leadflow analytics digests ...`` (schedule one for a user, list, send what is due, remove)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.crm import service as crm
from leadflow.kernel.commands import open_context


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    return CliRunner()


def test_alert_rules_from_the_command_line(cli: CliRunner) -> None:
    made = cli.invoke(app, ["analytics", "alerts", "add", "--name", "Lag", "--metric", "processing_lag"])
    assert made.exit_code == 0, made.output
    rule_id = made.output.split()[1]
    assert "threshold 300" in made.output
    listed = cli.invoke(app, ["analytics", "alerts", "rules"])
    assert rule_id in listed.output
    assert "processing_lag" in listed.output
    checked = cli.invoke(app, ["analytics", "alerts", "check"])
    assert "0 opened, 0 resolved" in checked.output, checked.output
    assert cli.invoke(app, ["analytics", "alerts", "incidents", "--open"]).output.strip() == ""
    bad = cli.invoke(app, ["analytics", "alerts", "add", "--name", "x", "--metric", "mood"])
    assert bad.exit_code != 0
    assert "metric" in bad.output
    assert cli.invoke(app, ["analytics", "alerts", "remove", rule_id]).exit_code == 0
    assert rule_id not in cli.invoke(app, ["analytics", "alerts", "rules"]).output


def test_digests_from_the_command_line(cli: CliRunner) -> None:
    with open_context() as ctx:
        data = crm.UserCreate.model_validate({"name": "M", "email": "m@example.com", "role": "marketer"})
        user = crm.create_user(ctx, data, actor="test")
    made = cli.invoke(app, ["analytics", "digests", "add", "--user", user.id, "--timezone", "Europe/Paris"])
    assert made.exit_code == 0, made.output
    digest_id = made.output.split()[1].rstrip(",")
    listed = cli.invoke(app, ["analytics", "digests", "list"])
    assert digest_id in listed.output
    assert "Europe/Paris" in listed.output
    assert "0 digest(s) sent" in cli.invoke(app, ["analytics", "digests", "send-due"]).output
    bad = cli.invoke(app, ["analytics", "digests", "add", "--user", user.id, "--cron", "soon"])
    assert bad.exit_code != 0
    assert cli.invoke(app, ["analytics", "digests", "remove", digest_id]).exit_code == 0
    assert digest_id not in cli.invoke(app, ["analytics", "digests", "list"]).output
