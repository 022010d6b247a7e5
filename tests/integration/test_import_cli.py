"""``leadflow import contacts|list FILE.csv --map HEADER=FIELD``: the command end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from tests.support.contacts import all_contacts

CSV = (
    "Mail,Given,Telefon,country,Firma,Website,Notes\n"
    "ann@example.com,Ann,030 1234567,DE,Acme,acme.example,call back\n"
    "bob@example.com,Bob,12,DE,,,\n"
    "ann@example.com,Annie,,,,,\n"
    "cy@example.com,Cy,+1 415 555 0132,,Acme,,\n"
)
MAPS = ["--map", "Mail=email", "--map", "Given=first_name", "--map", "Telefon=phone"]
MAPS += ["--map", "Firma=company_name", "--map", "Website=company_domain", "--map", "Notes="]


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    return CliRunner()


def test_import_contacts_with_a_mapping(cli: CliRunner, ctx: AppContext, tmp_path: Path) -> None:
    path = tmp_path / "fair.csv"
    path.write_text(CSV, encoding="utf-8")
    result = cli.invoke(app, ["import", "contacts", str(path), *MAPS], terminal_width=200)
    assert result.exit_code == 1, result.output  # one row rejected
    assert "4 rows: 2 created, 0 updated, 0 unchanged, 1 merged, 1 rejected" in result.stdout
    assert "ann@example.com is on lines 2, 4: merged into one contact" in result.stdout
    assert "invalid phone number '12'" in result.stdout
    people = {c["email"]: c for c in all_contacts(ctx)}
    assert set(people) == {"ann@example.com", "cy@example.com"}
    ann, cy = people["ann@example.com"], people["cy@example.com"]
    assert (ann["first_name"], ann["phone"], ann["traits"]) == ("Annie", "+49301234567", {"country": "DE"})
    assert ann["company_id"] is not None
    assert cy["company_id"] == ann["company_id"]  # "Acme" by name: the company the first row created


def test_a_bad_mapping_exits_2_and_imports_nothing(cli: CliRunner, ctx: AppContext, tmp_path: Path) -> None:
    path = tmp_path / "fair.csv"
    path.write_text(CSV, encoding="utf-8")
    result = cli.invoke(app, ["import", "contacts", str(path), "--map", "Mail=mailbox"], terminal_width=200)
    assert result.exit_code == 2
    assert "unknown field 'mailbox'" in result.output
    assert all_contacts(ctx) == []


def test_import_list_adds_the_contacts(cli: CliRunner, ctx: AppContext, tmp_path: Path) -> None:
    listed = segments.create(ctx, SegmentCreate(name="Fair", kind="static"), actor="test")
    path = tmp_path / "fair.csv"
    path.write_text("E-mail\nx@example.com\ny@example.com\n", encoding="utf-8")
    result = cli.invoke(app, ["import", "list", listed.id, str(path), "--map", "E-mail=email"])
    assert result.exit_code == 0, result.output
    assert "2 contact(s) added to the list" in result.stdout
    assert segments.get(ctx, listed.id).member_count == 2
