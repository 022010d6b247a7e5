"""``leadflow analytics``: the KPIs of a period (as text and CSV), rolling up and rebuilding."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.events.models import events

AT = datetime(2026, 5, 4, 12, tzinfo=UTC)
PERIOD = ["--from", "2026-05-04", "--to", "2026-05-04"]


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    engine = create_engine(database_url)
    rows = [
        ("leadflow.stage_changed", "c1", {"to": "lead"}, "internal"),
        ("leadflow.stage_changed", "c2", {"to": "lead"}, "internal"),
        ("leadflow.stage_changed", "c2", {"to": "mql"}, "internal"),
        ("Signed Up", "c1", {}, "api"),
    ]
    with engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "message_id": f"cli-{n}",
                    "type": "track",
                    "event": name,
                    "contact_id": contact,
                    "properties": properties,
                    "timestamp": AT,
                    "received_at": AT,
                    "processed_at": AT,
                    "source": source,
                }
                for n, (name, contact, properties, source) in enumerate(rows)
            ],
        )
    engine.dispose()
    return CliRunner()


def _figures(cli: CliRunner) -> dict[str, str]:
    answer = cli.invoke(app, ["analytics", "kpis", *PERIOD, "--csv"])
    assert answer.exit_code == 0, answer.output
    return {row["figure"]: row["current"] for row in csv.DictReader(io.StringIO(answer.output))}


def test_kpis_rollup_and_rebuild(cli: CliRunner) -> None:
    shown = cli.invoke(app, ["analytics", "kpis", *PERIOD], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "2026-05-04" in shown.output
    assert any(line.split()[:2] == ["leads", "2"] for line in shown.output.splitlines())
    figures = _figures(cli)
    assert (figures["visitors"], figures["leads"], figures["mql"]) == ("1.0", "2.0", "1.0")
    rebuilt = cli.invoke(app, ["analytics", "rebuild", "--from", "2026-05-01"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert _figures(cli) == figures
    assert cli.invoke(app, ["analytics", "rebuild"]).exit_code == 0
    assert _figures(cli) == figures
    assert "rolled up to event" in cli.invoke(app, ["analytics", "rollup"]).output


def test_bad_dates_are_refused(cli: CliRunner) -> None:
    assert cli.invoke(app, ["analytics", "kpis", "--from", "May 4th"]).exit_code == 2
    backwards = cli.invoke(app, ["analytics", "kpis", "--from", "2026-05-05", "--to", "2026-05-04"])
    assert backwards.exit_code != 0
    assert "after" in backwards.output
