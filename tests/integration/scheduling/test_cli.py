"""``leadflow scheduling ...`` in-process on both databases, on the test's virtual clock: consultants
made and changed, an ICS feed from a file refreshed, free slots in the asker's zone, bookings and
pending requests listed, a booking cancelled (its cancellation email queued)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.kernel import commands
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.models import messages
from leadflow.runtime.context import build_context
from leadflow.scheduling import service as scheduling
from leadflow.scheduling.schemas import ConsultationRequest
from tests.integration.scheduling.test_booking import FEED


@pytest.fixture
def cli(database_url: str, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.setattr(commands, "_builders", [lambda settings: build_context(settings, clock=clock)])
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> list[str]:
    result = cli.invoke(app, list(args), terminal_width=200)
    assert result.exit_code == code, result.output
    return result.stdout.rstrip("\n").splitlines()


def test_consultants_slots_bookings_and_feeds(cli: CliRunner, ctx: AppContext, tmp_path: Path) -> None:
    user_id = run(cli, "crm", "users", "add", "--name", "Grace", "--email", "grace@example.com",
                  "--timezone", "Europe/Berlin")[-1]  # fmt: skip
    run(cli, "scheduling", "consultants", "add", user_id, "--service", "Intro:30",
        "--hours", "mon-fri=09:00-12:00", "--hours", "sat=10:00-11:00", "--notice", "60")  # fmt: skip
    header, row = run(cli, "scheduling", "consultants", "list")
    assert header.split("\t")[:3] == ["user", "services", "hours"]
    fields = row.split("\t")
    assert fields[:4] == [user_id, "Intro:30", "mon=09:00-12:00 tue=09:00-12:00 wed=09:00-12:00 "
                          "thu=09:00-12:00 fri=09:00-12:00 sat=10:00-11:00", "Europe/Berlin"]  # fmt: skip
    assert fields[4:8] == ["30", "0/0", "60", "60"]

    tuesday = ["--service", "Intro", "--from", "2026-03-03T00:00:00", "--to", "2026-03-04T00:00:00"]
    free = run(cli, "scheduling", "slots", *tuesday, "--tz", "Europe/Berlin")[1:]
    assert [line.split("\t")[0] for line in free][:2] == [
        "2026-03-03T09:00:00+01:00",
        "2026-03-03T09:30:00+01:00",
    ]
    assert len(free) == 6
    assert free[0].split("\t")[2] == user_id

    # the week's team meeting (09:30-11:00 Berlin, weekly) from a feed file, a 15-minute buffer before
    path = tmp_path / "grace.ics"
    path.write_bytes(FEED)
    run(cli, "scheduling", "consultants", "set", user_id, "--ics-url", str(path), "--buffer-before", "15")
    assert run(cli, "scheduling", "feeds", "refresh", "--all")[0] == "1 feed(s) read"
    free = run(cli, "scheduling", "slots", *tuesday, "--tz", "America/New_York")[1:]
    assert [line.split("\t")[0] for line in free] == [
        "2026-03-03T03:00:00-05:00",  # 09:00 Berlin: it ends as the meeting starts
        "2026-03-03T05:30:00-05:00",  # 11:30 Berlin: 11:00 needs the 15 minutes before it free
    ]
    fields = run(cli, "scheduling", "consultants", "list")[1].split("\t")
    assert fields[5] == "15/0"
    assert (fields[8], fields[9]) == (str(path), "")
    run(cli, "scheduling", "consultants", "set", user_id, "--no-feed")
    assert run(cli, "scheduling", "consultants", "list")[1].split("\t")[8] == ""

    at = datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    booked = scheduling.request(
        ctx, ConsultationRequest(email="ada@example.com", service="Intro", preferred_times=[at])
    )
    pending = scheduling.request(
        ctx, ConsultationRequest(email="bob@example.com", service="Intro", preferred_times=[at])
    )
    assert booked.booking is not None
    assert pending.status == "pending"
    rows = [line.split("\t") for line in run(cli, "scheduling", "bookings", "list", "--consultant", user_id)]
    assert rows[1][:3] == [booked.booking.id, user_id, "ada@example.com"]
    assert rows[1][6:8] == ["booked", "0"]
    waiting = [line.split("\t") for line in run(cli, "scheduling", "requests", "list", "--status", "pending")]
    assert [(r[0], r[1], r[5]) for r in waiting[1:]] == [(pending.request_id, "bob@example.com", "pending")]

    assert run(cli, "scheduling", "bookings", "cancel", booked.booking.id, "--reason", "ill") == [
        f"{booked.booking.id}: canceled"
    ]
    assert run(cli, "scheduling", "bookings", "list")[1].split("\t")[6:8] == ["canceled", "1"]
    with ctx.db.read() as conn:
        keys = conn.execute(sa.select(messages.c.key).order_by(messages.c.key)).scalars().all()
    assert keys == [f"booking:{booked.booking.id}:0", f"booking:{booked.booking.id}:1"]


def test_bad_input_is_a_usage_error(cli: CliRunner, ctx: AppContext) -> None:
    user_id = run(cli, "crm", "users", "add", "--name", "Ann", "--email", "ann@example.com")[-1]
    for hours in ("mon=9-12", "fri-mon=09:00-12:00", "xyz=09:00-10:00", "mon=12:00-09:00"):
        run(
            cli,
            "scheduling",
            "consultants",
            "add",
            user_id,
            "--service",
            "Intro:30",
            "--hours",
            hours,
            code=2,
        )
    run(
        cli,
        "scheduling",
        "consultants",
        "add",
        user_id,
        "--service",
        "Intro",
        "--hours",
        "mon=09:00-10:00",
        code=2,
    )
    run(cli, "scheduling", "consultants", "set", "nobody", "--notice", "5", code=2)
    run(cli, "scheduling", "slots", "--service", "Intro", "--from", "x", "--to", "y", code=2)
    run(cli, "scheduling", "bookings", "cancel", "nobody", code=2)
    run(cli, "scheduling", "requests", "list", "--status", "lost", code=2)
