"""Every mistake on the command line is one ``error: ...`` line on stderr and a non-zero exit, never a
traceback (``leadflow.kernel.commands``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from tests.support import databases

TEMPLATE = Path(__file__).resolve().parents[2] / "src/leadflow/journeys/templates/welcome-series.yaml"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated SQLite database and the bad files the invocations below name."""
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", databases.migrated(databases.sqlite_url(tmp_path)))
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.yaml").write_text("steps: [\n")
    (tmp_path / "broken.json").write_text("{bad")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "bad-wait.yaml").write_text("events:\n  - {wait: 3x}\n")
    (tmp_path / "bad-duration.yaml").write_text("horizon: 3 weeks\n")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00email")
    (tmp_path / "people.csv").write_text("email\nann@example.com\n")
    (tmp_path / "a-folder").mkdir()
    return tmp_path


T = str(TEMPLATE)
MISTAKES = {
    "missing journey file": (["journeys", "simulate", "nope.yaml"], "does not exist"),
    "a folder, not a file": (["journeys", "simulate", "a-folder"], "a-folder"),
    "bad YAML": (["journeys", "simulate", "broken.yaml"], "broken.yaml: not valid YAML"),
    "bad JSON": (["journeys", "simulate", "broken.json"], "broken.json: not valid JSON"),
    "not a journey": (["journeys", "simulate", "list.yaml"], "error:"),
    "bad YAML script": (["journeys", "simulate", T, "--script", "broken.yaml"], "not valid YAML"),
    "script not a mapping": (["journeys", "simulate", T, "--script", "list.yaml"], "a script is a mapping"),
    "bad wait in a script": (["journeys", "simulate", T, "--script", "bad-wait.yaml"], "events.0"),
    "bad duration in a script": (["journeys", "simulate", T, "--script", "bad-duration.yaml"], "horizon"),
    "bad horizon": (["journeys", "simulate", T, "--horizon", "9x"], "'9x' is not a duration"),
    "unknown template": (["journeys", "install-templates", "nosuch"], "no journey template nosuch"),
    "bad scopes": (["keys", "create", "--name", "x", "--scopes", "ingest,root"], "unknown scope(s) root"),
    "bad key id": (["keys", "revoke", "nope"], "no API key nope"),
    "missing CSV": (["import", "contacts", "nope.csv"], "does not exist"),
    "binary CSV": (["import", "contacts", "binary.csv"], "not UTF-8"),
    "bad column mapping": (["import", "contacts", "people.csv", "--map", "bad"], "HEADER=FIELD"),
    "unknown mapped field": (["import", "contacts", "people.csv", "--map", "email=zz"], "unknown field 'zz'"),
    "unknown option": (["doctor", "--bogus"], "No such option: --bogus"),
    "unknown list": (["import", "list", "nope", "people.csv"], "no segment nope"),
    "unknown segment": (["segments", "refresh", "nope"], "no segment nope"),
    "unknown rule set": (["scoring", "install-defaults", "--set", "zzz"], "unknown rule set 'zzz'"),
    "bad port": (["serve", "--port", "abc"], "--port"),
    "bad DKIM key type": (["email", "dkim-keygen", "k.pem", "--type", "dsa"], "--type"),
    "unwritable DKIM key": (["email", "dkim-keygen", "no/such/dir/k.pem"], "cannot be written"),
    "unknown command": (["nosuchcmd"], "No such command"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_a_mistake_is_one_line_on_stderr(workdir: Path, name: str) -> None:
    arguments, expected = MISTAKES[name]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code in (1, 2), (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_an_unmigrated_database_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", databases.sqlite_url(tmp_path))
    result = CliRunner().invoke(app, ["keys", "create", "--name", "x"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: the database schema is not up to date: run `leadflow migrate` first"
    )


def test_a_group_alone_still_shows_its_help(workdir: Path) -> None:
    result = CliRunner().invoke(app, ["keys"])
    assert "create" in result.output
    assert "error:" not in result.output


def test_the_installed_command_reports_the_same_way(workdir: Path) -> None:
    """Through the real entry point: a process, its stderr, its exit status."""
    result = subprocess.run(
        [sys.executable, "-m", "leadflow", "journeys", "simulate", T, "--script", "bad-duration.yaml"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: horizon: ")


@pytest.mark.parametrize(
    ("url", "status", "expected"),
    [
        ("nonsense://", 2, "error: LEADFLOW_DATABASE_URL: "),
        ("postgresql+psycopg://user@db-host.invalid/leadflow", 1, "error: the database cannot be used: "),
    ],
)
def test_a_database_that_cannot_be_used_is_one_line(
    monkeypatch: pytest.MonkeyPatch, url: str, status: int, expected: str
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == status, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(expected)
