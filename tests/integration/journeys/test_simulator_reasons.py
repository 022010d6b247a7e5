"""The simulator: why an email did not go out, a chosen start instant, a scratch database of the
installation's kind (created and dropped), on both databases."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.journeys import scratch, simulator
from leadflow.journeys.simulator import Moment, SimulationRequest
from leadflow.kernel import commands
from leadflow.kernel.context import AppContext
from leadflow.messaging import erased
from leadflow.messaging.models import suppressions
from tests.support import databases
from tests.support import journeys as j


def _journey(*steps: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "name": "Reasons",
        "trigger": {"type": "event", "event": "Go"},
        "settings": settings,
        "steps": list(steps),
    }


def _mails(count: int, template: str = "news") -> list[dict[str, Any]]:
    return [
        {
            "id": f"m{n}",
            "type": "send_email",
            "template": template,
            **({"next": f"m{n + 1}"} if n < count else {}),
        }
        for n in range(1, count + 1)
    ]


def _simulate(ctx: AppContext, definition: dict[str, Any], **request: Any) -> simulator.Simulation:
    body = {"events": [{"event": "Go"}], "horizon": "3d", **request}
    return simulator.simulate(ctx, definition, SimulationRequest.model_validate(body))


def _emails(result: simulator.Simulation) -> list[Moment]:
    return [m for m in result.timeline if m.type == "send_email"]


def test_it_runs_on_a_scratch_database_of_the_installations_kind(ctx: AppContext) -> None:
    j.template(ctx, "news")
    result = _simulate(ctx, _journey(*_mails(1)))
    assert (result.database, result.note) == (ctx.db.dialect, None)
    assert [(m.email_status, m.reason) for m in _emails(result)] == [("sent", None)]
    assert j.runs(ctx) == []
    assert j.sent(ctx) == []


def test_a_missing_variable_is_the_reason(ctx: AppContext) -> None:
    j.template(ctx, "hi", subject="Hi {{ contact.first_name }}")
    j.template(ctx, "news")
    result = _simulate(ctx, _journey(*_mails(1, "hi")), contact={"email": "ann@example.com"})
    (moment,) = _emails(result)
    assert (moment.status, moment.email, moment.email_status) == ("done", None, "failed")
    assert moment.reason is not None
    assert moment.reason.startswith("failed: missing variable contact.first_name")
    named = _simulate(ctx, _journey(*_mails(1, "hi")), contact={"first_name": "Ann"})
    assert [(m.email_status, m.reason) for m in _emails(named)] == [("sent", None)]


def test_the_frequency_cap_is_the_reason(ctx: AppContext) -> None:
    j.template(ctx, "news")
    result = _simulate(ctx, _journey(*_mails(4)))
    assert [(m.email_status, m.reason) for m in _emails(result)] == [
        ("sent", None),
        ("sent", None),
        ("sent", None),
        ("suppressed", "suppressed: frequency_capped"),
    ]


def test_an_unsubscribed_contact_or_a_suppressed_address_is_the_reason(ctx: AppContext) -> None:
    j.template(ctx, "news")
    unsubscribed = _simulate(ctx, _journey(*_mails(1)), contact={"traits": {"unsubscribed": True}})
    assert [m.reason for m in _emails(unsubscribed)] == ["suppressed: contact unsubscribed"]
    with ctx.db.write() as conn:
        conn.execute(
            suppressions.insert().values(
                email="bounced@example.com", reason="hard_bounce", created_at=ctx.clock.now()
            )
        )
    bounced = _simulate(ctx, _journey(*_mails(1)), contact={"email": "Bounced@example.com"})
    assert [m.reason for m in _emails(bounced)] == ["suppressed: hard_bounce"]
    with ctx.db.write() as conn:  # an erased person's complaint is kept as a keyed digest of the address
        digest = erased.suppression_key(ctx.secret_key, "gone@example.com")
        conn.execute(
            suppressions.insert().values(email=digest, reason="complaint", created_at=ctx.clock.now())
        )
    gone = _simulate(ctx, _journey(*_mails(1)), contact={"email": "gone@example.com"})
    assert [m.reason for m in _emails(gone)] == ["suppressed: complaint"]
    assert [m.reason for m in _emails(_simulate(ctx, _journey(*_mails(1))))] == [None]


def test_the_start_instant_is_honoured_and_quiet_hours_are_the_reason_for_a_late_email(
    ctx: AppContext,
) -> None:
    j.template(ctx, "news")
    definition = _journey(*_mails(1), quiet_hours={"start": "21:00", "end": "08:00"})
    start = "2026-07-04T21:30:00+02:00"
    result = _simulate(ctx, definition, start=start, contact={"timezone": "Europe/Berlin"})
    assert result.started_at == datetime(2026, 7, 4, 19, 30, tzinfo=UTC)
    (moment,) = _emails(result)
    assert moment.at == datetime(2026, 7, 5, 6, 0, tzinfo=UTC)  # 08:00 in Berlin
    assert (moment.email_status, moment.reason) == ("sent", "quiet hours: waited until 2026-07-05 06:00 UTC")
    cut = _simulate(ctx, definition, start=start, horizon="2h", contact={"timezone": "Europe/Berlin"})
    (waiting,) = _emails(cut)
    assert (waiting.status, waiting.email_status) == ("pending", None)
    assert waiting.reason == "quiet hours: waits until 2026-07-05 06:00 UTC"
    naive = _simulate(ctx, _journey(*_mails(1)), start="2026-03-02T10:15:00")
    assert naive.started_at == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert _emails(naive)[0].at == naive.started_at


def test_the_cli_takes_start_and_prints_the_reasons(
    ctx: AppContext, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.setenv("LEADFLOW_BRAND_ADDRESS", "1 Main St, Springfield")
    # the CLI's console took its width when first imported (another test may have imported it first)
    monkeypatch.setattr(commands.console, "_width", 200)
    j.template(ctx, "news")
    j.template(ctx, "hi", subject="Hi {{ contact.first_name }}")
    journey = tmp_path / "journey.yaml"
    journey.write_text(
        yaml.safe_dump(_journey(*_mails(3, "news"), {"id": "m4", "type": "send_email", "template": "hi"}))
    )
    _chain(journey)
    script = tmp_path / "script.yaml"
    script.write_text(yaml.safe_dump({"events": [{"event": "Go"}]}))
    args = ["journeys", "simulate", str(journey), "--script", str(script), "--start", "2026-03-02T09:00:00Z"]
    answer = CliRunner().invoke(app, [*args, "--json"])
    assert answer.exit_code == 0, answer.output
    found = json.loads(answer.stdout)
    assert (found["started_at"], found["database"]) == ("2026-03-02T09:00:00Z", ctx.db.dialect)
    last = [m for m in found["timeline"] if m["type"] == "send_email"][-1]
    assert (last["step"], last["email_status"], last["at"]) == ("m4", "suppressed", "2026-03-02T09:00:00Z")
    assert last["reason"] == "suppressed: frequency_capped"
    text = CliRunner().invoke(app, args)
    assert text.exit_code == 0, text.output
    assert "from 2026-03-02T09:00:00+00:00" in text.stdout
    assert "suppressed: frequency_capped" in text.stdout
    wrong = CliRunner().invoke(app, [*args[:-1], "someday"])
    assert wrong.exit_code == 2
    assert "start" in wrong.output


def _chain(path: Path) -> None:
    """m3 leads to m4 (the three news mails, then the greeting over the cap)."""
    data = yaml.safe_load(path.read_text())
    data["steps"][2]["next"] = "m4"
    path.write_text(yaml.safe_dump(data))


def test_a_postgresql_scratch_database_is_created_and_dropped(ctx: AppContext) -> None:
    if ctx.db.is_sqlite:
        with scratch.database(ctx.db) as place:
            assert place.kind == "sqlite"
            folder = Path(sa.make_url(place.url).database or "").parent
            assert folder.is_dir()
        assert not folder.exists()
        return
    with scratch.database(ctx.db) as place:
        name = sa.make_url(place.url).database
        assert (place.kind, _exists(name)) == ("postgresql", True)
        assert name != sa.make_url(ctx.db.url).database
    assert _exists(name) is False


def _exists(name: str | None) -> bool:
    with psycopg.connect(databases.ADMIN_URL) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def test_a_role_that_may_not_create_databases_simulates_on_sqlite_and_says_so(
    ctx: AppContext, database_url: str
) -> None:
    if ctx.db.is_sqlite:
        pytest.skip("a PostgreSQL privilege")
    role = f"leadflow_sim_test_{os.getpid()}"
    with psycopg.connect(databases.ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN NOCREATEDB')
    try:
        _grant(database_url, role)
        from leadflow.runtime.context import build_context

        url = (
            sa.make_url(database_url).set(username=role, password=None).render_as_string(hide_password=False)
        )
        limited = build_context(ctx.settings.model_copy(update={"database_url": url}), clock=ctx.clock)
        try:
            j.template(ctx, "news")
            result = _simulate(limited, _journey(*_mails(1)))
        finally:
            limited.close()
        assert result.database == "sqlite"
        assert result.note is not None
        assert "CREATEDB" in result.note
        assert [m.email_status for m in _emails(result)] == ["sent"]
    finally:
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as owner:
            owner.execute(f'DROP OWNED BY "{role}"')
        with psycopg.connect(databases.ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _grant(database_url: str, role: str) -> None:
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as owner:
        owner.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')


def test_the_api_takes_start_and_answers_the_reasons(
    client: TestClient, admin_key: str, ctx: AppContext
) -> None:
    j.template(ctx, "hi", subject="Hi {{ contact.first_name }}")
    headers = {"Authorization": f"Bearer {admin_key}"}
    definition = _journey({"id": "w", "type": "wait", "duration": "1d", "next": "m1"}, *_mails(1, "hi"))
    created = client.post("/api/v1/journeys", json={"definition": definition}, headers=headers).json()
    body = {"events": [{"event": "Go"}], "horizon": "3d", "start": "2026-05-01T12:00:00Z"}
    answer = client.post(f"/api/v1/journeys/{created['id']}/simulate", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["database"] == ctx.db.dialect
    (mail,) = [m for m in found["timeline"] if m["step"] == "m1"]
    assert mail["at"] == "2026-05-02T12:00:00Z"
    assert mail["email_status"] == "failed"
    assert mail["reason"].startswith("failed: missing variable contact.first_name")
    wrong = client.post(
        f"/api/v1/journeys/{created['id']}/simulate", json={**body, "start": "someday"}, headers=headers
    )
    assert wrong.status_code == 422
