"""CSV import: upsert by email, every rejected row reported with its line and reason."""

from __future__ import annotations

from pathlib import Path

from leadflow.contacts.importer import import_contacts, read_csv
from leadflow.kernel.context import AppContext
from tests.support.contacts import all_contacts

CSV = """Email,First Name,Last Name,Phone,Plan,Lifecycle Stage,User ID
ann@example.com,Ann,Lee,+1 415 555 0132,pro,,
not-an-email,Bad,Row,,,,
bob@example.com,Bob,,12,,,
carl@example.com,Carl,Moe,,free,customer,u-carl
,No,Email,,,,
ANN@example.com,Annie,,,,,
dora@example.com,Dora,,,,queen,
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_upserts_valid_rows_and_reports_the_rest(ctx: AppContext, tmp_path: Path) -> None:
    progress: list[int] = []
    report = import_contacts(ctx, read_csv(_write(tmp_path, CSV)), actor="cli", progress=progress.append)
    assert (report.rows, report.created, report.updated) == (7, 2, 1)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "invalid email address 'not-an-email'"),
        (4, "invalid phone number '12'"),
        (6, "email is required"),
        (8, "unknown lifecycle stage 'queen'; use one of visitor, lead, mql, sql, customer, advocate"),
    ]
    assert sum(progress) == 3
    people = {c["email"]: c for c in all_contacts(ctx)}
    assert set(people) == {"ann@example.com", "carl@example.com"}
    assert people["ann@example.com"]["first_name"] == "Annie"  # the later row updated the same contact
    assert people["ann@example.com"]["phone"] == "+14155550132"
    assert people["ann@example.com"]["traits"] == {"plan": "pro"}
    assert (people["carl@example.com"]["lifecycle_stage"], people["carl@example.com"]["user_id"]) == (
        "customer",
        "u-carl",
    )


def test_importing_the_same_file_again_changes_nothing(ctx: AppContext, tmp_path: Path) -> None:
    path = _write(tmp_path, "email,first_name\nx@example.com,X\ny@example.com,Y\n")
    import_contacts(ctx, read_csv(path), actor="cli")
    before = all_contacts(ctx)
    again = import_contacts(ctx, read_csv(path), actor="cli")
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    assert all_contacts(ctx) == before


def test_import_refuses_a_user_id_that_belongs_to_someone_else(ctx: AppContext, tmp_path: Path) -> None:
    path = _write(tmp_path, "email,user_id\none@example.com,u1\ntwo@example.com,u1\n")
    report = import_contacts(ctx, read_csv(path), actor="cli")
    assert report.created == 1
    assert [(r.line, r.reason) for r in report.rejected] == [(3, "user id u1 belongs to another contact")]


def test_large_import_runs_in_chunks(ctx: AppContext, tmp_path: Path) -> None:
    lines = ["email,score"] + [f"p{i}@example.com,{i}" for i in range(1234)]
    report = import_contacts(ctx, read_csv(_write(tmp_path, "\n".join(lines) + "\n")), actor="cli")
    assert report.created == 1234
    assert len(all_contacts(ctx)) == 1234
