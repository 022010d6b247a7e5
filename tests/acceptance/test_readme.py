"""Every command README.md shows works verbatim, in the order it shows them.

The commands are read from the README itself: its ``sh`` and ``python`` blocks, the ``curl`` and
``.venv/bin/leadflow`` commands in its prose, and the synopsis under "Command line". Each runs in bash
from the repository root, as a reader would paste it after ``make run``, against a live server on a
temporary database; only the values a reader fills in are substituted (:data:`FILLED_IN`). A command
that cannot run here is listed in :data:`NOT_RUN` with the reason and is still checked for syntax.
``curl`` runs with a ``.curlrc`` that adds ``--fail``: an answer outside 2xx fails the command.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.kernel.settings import Settings
from tests.support import databases
from tests.support.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`((?:curl -|(?:\.venv/bin/)?leadflow [a-z])[^`]*)`")
PLACEHOLDER_DB = "postgresql+psycopg://user@db-host/leadflow"

_HUBSPOT = (
    "needs the reader's HubSpot account (a private app's token); tests/integration/connectors/test_api.py "
    "runs add, test and backfill against the HubSpot peer (tests/peers/hubspot.py)"
)
NOT_RUN = {
    "make run": "serves until stopped: the test does what it does (migrate, then serve) through "
    "tests/support/server.py, on a temporary database and port, with the exports of its block; "
    "`make -n run` checks the target",
    "make test": "this suite itself; `make -n test` checks the target",
    ".venv/bin/leadflow serve --processes 4 --no-worker": "serves until stopped; its --help must list "
    "each option",
    ".venv/bin/leadflow worker --concurrency 2": "works until stopped; its --help must list each option",
    '.venv/bin/leadflow connectors add hubspot --name HubSpot --token "$HUBSPOT_TOKEN" --objects '
    "contact,company,deal,activity": _HUBSPOT,
    ".venv/bin/leadflow connectors test HubSpot": _HUBSPOT,
    ".venv/bin/leadflow connectors backfill HubSpot --segment <segment id>": _HUBSPOT,
    ".venv/bin/leadflow doctor": "checks the reader's own SMTP server, DKIM key and public address, none of "
    "which exists here (it exits 1, as it should); tests/integration/test_doctor.py runs it both ways",
}
FILLED_IN = {
    "<admin key>": "the admin key the first start printed",
    "<write key>": "the write key the first start printed",
    "127.0.0.1:8000": "the test server's free port instead of 8000",
    PLACEHOLDER_DB: "a new PostgreSQL database: there is no db-host here",
    "<user id>": "the id the CRM user's creation printed",
    "<form id>": "the id the form's creation printed",
}
#: Placeholders for an id a command printed: the ``id`` of the JSON a POST to this path answered.
CAPTURED = {"<user id>": "/api/v1/crm/users", "<form id>": "/api/v1/forms"}


@dataclass
class Snippet:
    kind: str  # "sh", "python", "synopsis" or "inline"
    text: str


def snippets(text: str) -> list[Snippet]:
    """The README's blocks and inline commands, in reading order."""
    found: list[Snippet] = []
    position = 0
    for block in FENCE.finditer(text):
        found += [Snippet("inline", m) for m in INLINE.findall(text[position : block.start()])]
        language = block.group(1) or "synopsis"
        found.append(Snippet(language, block.group(2)))
        position = block.end()
    found += [Snippet("inline", m) for m in INLINE.findall(text[position:])]
    return found


def commands(block: str) -> list[str]:
    """One entry per command: continued lines joined, blank and comment lines left out."""
    joined = re.sub(r"\\\n\s*", "", block)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def bare(command: str) -> str:
    """The command without its trailing comment."""
    return command.split("  #")[0].strip()


@dataclass
class Reader:
    """A reader's terminal: the server ``make run`` started and the values it printed."""

    workdir: Path
    server: LiveServer | None = None
    admin_key: str = ""
    write_key: str = ""
    databases: list[str] = field(default_factory=list)
    captured: dict[str, str] = field(default_factory=dict)

    def fill(self, text: str) -> str:
        values = {
            "<admin key>": self.admin_key,
            "<write key>": self.write_key,
            "127.0.0.1:8000": f"127.0.0.1:{self.server.port if self.server else 8000}",
            **self.captured,
        }
        if PLACEHOLDER_DB in text:
            if not self.databases:
                self.databases.append(databases.create_postgres_database())
            values[PLACEHOLDER_DB] = self.databases[0]
        for placeholder, value in values.items():
            text = text.replace(placeholder, value)
        return text

    @property
    def database_url(self) -> str:
        return databases.sqlite_url(self.workdir)

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")},
            "LEADFLOW_DATABASE_URL": self.database_url,
            "LEADFLOW_EMAIL_OUTBOX_DIR": str(self.workdir / "outbox"),
            "LEADFLOW_LOG_LEVEL": "warning",
            "CURL_HOME": str(self.workdir),
            "COLUMNS": "200",
        }

    def bash(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{script}"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )

    def make_run(self, exports: list[str]) -> None:
        """What ``make run`` does (migrate, serve), with the variables the block exported."""
        extra = dict(_exported(self.fill(line)) for line in exports)
        if self.server is None:
            self.server = LiveServer(database_url=self.database_url, workdir=self.workdir, env=extra)
            self.server.migrate()
            self.server.start()
            self.admin_key, self.write_key = self.server.admin_key, self.server.write_key
            return
        port = self.server.port
        self.server.stop()
        self.server = LiveServer(database_url=self.database_url, workdir=self.workdir, env=extra, port=port)
        self.server.start()

    def capture(self, command: str, output: str) -> None:
        """Keep the id a reader copies from the JSON a creating ``curl`` printed (:data:`CAPTURED`)."""
        for placeholder, path in CAPTURED.items():
            if " -d " in command and bare(command).endswith(f"127.0.0.1:8000{path}"):
                self.captured[placeholder] = json.loads(output)["id"]

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        for url in self.databases:
            databases.drop_postgres_database(url)


def _exported(line: str) -> tuple[str, str]:
    [assignment] = shlex.split(line.removeprefix("export "), comments=True)
    name, _, value = assignment.partition("=")
    return name, value


@pytest.fixture
def reader(tmp_path: Path) -> Iterator[Reader]:
    if not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    (tmp_path / ".curlrc").write_text("fail-with-body\nsilent\nshow-error\n")
    found = Reader(workdir=tmp_path)
    yield found
    found.close()


def _check_syntax(reader: Reader, command: str) -> None:
    """A command not run: ``make -n`` for a make target, else its ``--help`` lists each option it uses."""
    if command.startswith("make "):
        checked = reader.bash(f"make -n {command.removeprefix('make ')} >/dev/null")
        assert checked.returncode == 0, checked.stderr
        return
    _check_options(command.removeprefix(".venv/bin/"))


def _check_options(line: str) -> None:
    """``leadflow SUBCOMMAND ... --help`` (in-process: the same typer app the entry point runs) shows
    each ``--option`` the line uses."""
    words = bare(line).split()
    assert words[0] == "leadflow", line
    path: list[str] = []
    for word in words[1:]:
        if not re.fullmatch(r"[a-z][a-z-]*", word):
            break
        path.append(word)
    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert shown.exit_code == 0, f"{line}: {shown.output}"
    for option in re.findall(r"--[a-z][a-z-]*", line):
        assert option in shown.stdout, f"{line}: {option} is not an option"


def _check_exports(reader: Reader, exports: list[str]) -> None:
    """Exported variables: bash accepts the lines, and leadflow's settings accept the values."""
    names = [_exported(line)[0] for line in exports]
    shown = reader.bash("\n".join([*map(reader.fill, exports), *(f'printf "%s\\0" "${n}"' for n in names)]))
    assert shown.returncode == 0, shown.stderr
    values = dict(zip(names, shown.stdout.split("\0"), strict=False))
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        Settings()


def _run_python(reader: Reader, source: str) -> None:
    script = reader.workdir / "snippet.py"
    script.write_text(reader.fill(source))
    ran = subprocess.run(
        [sys.executable, str(script)],
        env=reader.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert reader.server is not None
    reader.server.wait_processed()


def _run_sh(reader: Reader, block: str) -> None:
    exports: list[str] = []
    for command in commands(block):
        key = bare(command)
        if command.startswith("export "):
            exports.append(command)
            _check_exports(reader, exports)
            continue
        if key in NOT_RUN:
            _check_syntax(reader, key)
            if key == "make run":
                reader.make_run(exports)
            continue
        ran = reader.bash("\n".join([*map(reader.fill, exports), reader.fill(command)]))
        assert ran.returncode == 0, f"{command}\nstdout: {ran.stdout}\nstderr: {ran.stderr}"
        reader.capture(command, ran.stdout)


def test_every_readme_command_works_verbatim(reader: Reader) -> None:
    ran = {"sh": 0, "python": 0, "inline": 0, "synopsis": 0}
    for snippet in snippets(README.read_text("utf-8")):
        if snippet.kind == "sh":
            _run_sh(reader, snippet.text)
        elif snippet.kind == "python":
            _run_python(reader, snippet.text)
        elif snippet.kind == "inline":
            _run_sh(reader, snippet.text)
        elif snippet.kind == "synopsis":
            _check_synopsis(reader, snippet.text)
        else:
            pytest.fail(f"README has a {snippet.kind} block this test does not know how to run")
        ran[snippet.kind] += 1
    assert ran["sh"] >= 4
    assert ran["python"] >= 1
    assert ran["inline"] >= 2
    assert ran["synopsis"] >= 1
    assert reader.server is not None
    with httpx.Client(
        base_url=reader.server.url, headers={"Authorization": f"Bearer {reader.admin_key}"}
    ) as api:
        contacts = api.get("/api/v1/contacts", params={"email": "ann@example.com"}).json()["data"]
        assert [c["first_name"] for c in contacts] == ["Ann"]  # the python snippet reached the server
        journey = api.get("/api/v1/journeys/welcome-series").json()
        assert journey["status"] == "active"  # installed by the CLI, published by curl
        reader.server.wait_processed()  # the form's post: a lead with an owner and a timeline
        lead = api.get("/api/v1/crm/leads/bo@example.com").json()
        assert lead["owner_id"] == reader.captured["<user id>"]
        timeline = api.get("/api/v1/crm/leads/bo@example.com/activities").json()["data"]
        assert {"form_submitted", "owner_assigned"} <= {entry["kind"] for entry in timeline}


def _check_synopsis(reader: Reader, block: str) -> None:
    """The synopsis says ``leadflow``, as the section says: with the virtual environment activated.
    Its lines hold placeholders (``FILE.csv``, ``ID``), so each is checked for its syntax."""
    activated = reader.bash(". .venv/bin/activate\nleadflow --help")
    assert activated.returncode == 0, activated.stderr
    for line in commands(block):
        _check_options(line)


def test_the_readme_lists_what_it_does_not_run() -> None:
    """Every command in NOT_RUN still appears in the README (a stale entry would hide nothing)."""
    text = README.read_text("utf-8")
    for command in NOT_RUN:
        assert command in text, command
    for placeholder in FILLED_IN:
        assert placeholder in text, placeholder
