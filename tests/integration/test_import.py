"""CSV import: upsert by email, every rejected row reported with its line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadflow.contacts.import_run import import_contacts
from leadflow.contacts.importer import read_csv
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
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
    report = import_contacts(
        ctx, read_csv(_write(tmp_path, CSV)), actor="cli", on_chunk=lambda _, r: progress.append(r.rows)
    )
    assert (report.rows, report.created, report.updated, report.merged) == (7, 2, 0, 1)
    assert [(r.line, r.reason.split(":")[0]) for r in report.rejected] == [
        (3, "invalid email address 'not-an-email'"),
        (4, "invalid phone number '12'"),
        (6, "email is required"),
        (8, "unknown lifecycle stage 'queen'; use one of visitor, lead, mql, sql, customer, advocate"),
    ]
    assert progress == [7]
    assert [(w.lines, w.code) for w in report.warnings] == [([2, 7], "duplicate_email")]
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


def _companies(ctx: AppContext) -> list[dict[str, object]]:
    import sqlalchemy as sa

    from leadflow.contacts.models import companies

    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(companies).order_by(companies.c.name))]


def test_duplicates_in_one_file_merge_with_later_non_empty_values_winning(
    ctx: AppContext, tmp_path: Path
) -> None:
    path = _write(
        tmp_path,
        "email,first_name,last_name,plan\n"
        "dup@example.com,Dee,,basic\n"
        "other@example.com,Oz,,\n"
        "DUP@example.com,,Upton,\n"
        "dup@example.com,Dana,,pro\n",
    )
    report = import_contacts(ctx, read_csv(path), actor="cli")
    assert (report.created, report.updated, report.merged, report.rejected) == (2, 0, 2, [])
    assert [(w.lines, w.message) for w in report.warnings] == [
        (
            [2, 4, 5],
            "dup@example.com is on lines 2, 4, 5: merged into one contact (later non-empty values win)",
        )
    ]
    people = {c["email"]: c for c in all_contacts(ctx)}
    assert len(people) == 2
    dup = people["dup@example.com"]
    assert (dup["first_name"], dup["last_name"], dup["traits"]) == ("Dana", "Upton", {"plan": "pro"})


def test_phone_is_read_in_the_rows_country(ctx: AppContext, tmp_path: Path) -> None:
    ctx.settings.default_phone_region = "US"
    path = _write(
        tmp_path,
        "email,phone,country\n"
        "de@example.com,030 1234567,DE\n"
        "us@example.com,(415) 555-0132,\n"
        "gb@example.com,020 7946 0958,gb\n"
        "bad@example.com,12,DE\n"
        "named@example.com,(415) 555-0133,Germany\n",
    )
    report = import_contacts(ctx, read_csv(path), actor="cli")
    assert [(r.line, r.code, r.values) for r in report.rejected] == [
        (5, "invalid_phone", {"email": "bad@example.com", "phone": "12", "country": "DE"})
    ]
    people = {c["email"]: c for c in all_contacts(ctx)}
    assert people["de@example.com"]["phone"] == "+49301234567"
    assert people["gb@example.com"]["phone"] == "+442079460958"
    assert people["us@example.com"]["phone"] == "+14155550132"
    assert people["named@example.com"]["phone"] == "+14155550133"  # not a code: the default region
    assert people["de@example.com"]["traits"] == {"country": "DE"}


def test_company_columns_create_or_link_the_company(ctx: AppContext, tmp_path: Path) -> None:
    first = _write(
        tmp_path,
        "email,company,company_domain\n"
        "a@example.com,Acme Inc,https://www.Acme.example/about\n"
        "b@example.com,ACME INC,\n"
        "c@example.com,Globex,\n"
        "d@example.com,,acme.example\n"
        "e@example.com,Bad,not a domain\n",
    )
    report = import_contacts(ctx, read_csv(first), actor="cli")
    assert [(r.line, r.code) for r in report.rejected] == [(6, "invalid_domain")]
    firms = _companies(ctx)
    assert [(f["name"], f["domain"]) for f in firms] == [("Acme Inc", "acme.example"), ("Globex", None)]
    acme, globex = firms[0]["id"], firms[1]["id"]
    people = {c["email"]: c["company_id"] for c in all_contacts(ctx)}
    assert people == {
        "a@example.com": acme,
        "b@example.com": acme,
        "c@example.com": globex,
        "d@example.com": acme,
    }
    again = _write(tmp_path, "email,company name,company website\nf@example.com,globex,globex.example\n")
    import_contacts(ctx, read_csv(again), actor="cli")
    firms = _companies(ctx)
    assert [(f["name"], f["domain"]) for f in firms] == [
        ("Acme Inc", "acme.example"),
        ("Globex", "globex.example"),
    ]
    assert {c["email"]: c["company_id"] for c in all_contacts(ctx)}["f@example.com"] == globex


def test_mapping_renames_skips_and_makes_traits(ctx: AppContext, tmp_path: Path) -> None:
    path = _write(
        tmp_path, "E-Mail Adresse,Vorname,Notizen,Tarif,Schlagworte\nm@example.com,Max,secret,pro,a; B\n"
    )
    mapping = {"E-Mail Adresse": "email", "vorname": "first_name", "Notizen": "", "Tarif": "traits.plan"}
    report = import_contacts(ctx, read_csv(path), actor="cli", mapping={**mapping, "Schlagworte": "tags"})
    assert (report.created, report.rejected) == (1, [])
    person = all_contacts(ctx)[0]
    assert (person["email"], person["first_name"], person["traits"]) == (
        "m@example.com",
        "Max",
        {"plan": "pro"},
    )
    from leadflow.contacts import tags

    with ctx.db.read() as conn:
        assert tags.of(conn, person["id"]) == ["a", "b"]


@pytest.mark.parametrize(
    ("mapping", "code"),
    [
        ({"Nope": "email"}, "unknown_column"),
        ({"mail": "mailbox"}, "invalid_mapping"),
        ({"mail": ""}, "missing_email_column"),
    ],
)
def test_a_bad_mapping_is_refused_before_anything_is_imported(
    ctx: AppContext, tmp_path: Path, mapping: dict[str, str], code: str
) -> None:
    path = _write(tmp_path, "mail,name\nx@example.com,X\n")
    with pytest.raises(Invalid) as refused:
        import_contacts(ctx, read_csv(path), actor="cli", mapping={"mail": "email", **mapping})
    assert refused.value.code == code
    assert all_contacts(ctx) == []


def test_import_into_a_list_adds_each_chunk(ctx: AppContext, tmp_path: Path) -> None:
    from leadflow.segments import service as segments
    from leadflow.segments.schemas import SegmentCreate

    listed = segments.create(ctx, SegmentCreate(name="Fair visitors", kind="static"), actor="test")
    lines = ["email"] + [f"p{i}@example.com" for i in range(600)] + ["not-an-email"]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    report = import_contacts(ctx, read_csv(path), actor="cli", list_id=listed.id)
    assert (report.created, report.listed, len(report.rejected)) == (600, 600, 1)
    assert segments.get(ctx, listed.id).member_count == 600
