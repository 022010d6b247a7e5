"""The pure half of the CSV importer: header names, mappings and row validation."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from leadflow.contacts.changes import UNSET
from leadflow.contacts.importer import ParsedRow, clean, field_for, parse_mapping, parse_row, resolve_columns
from leadflow.kernel.errors import Invalid


def column_key(header: str) -> str:
    return field_for(header) or clean(header)


def _parse(line: int, record: Mapping[str, str | None], region: str | None, **mapping: str) -> ParsedRow:
    headers = list(record)
    columns = resolve_columns(headers, mapping)
    return parse_row(line, [record[h] or "" for h in headers], columns, region)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("email", "email"),
        ("Email", "email"),
        ("E-Mail", "email"),
        (" Email Address ", "email"),
        ("First Name", "first_name"),
        ("firstname", "first_name"),
        ("Last-Name", "last_name"),
        ("Surname", "last_name"),
        ("Phone Number", "phone"),
        ("MOBILE", "phone"),
        ("User ID", "user_id"),
        ("userid", "user_id"),
        ("Stage", "lifecycle_stage"),
        ("Time Zone", "timezone"),
        ("Owner ID", "owner_id"),
        ("Favourite   Colour", "favourite_colour"),
        ("  Plan ", "plan"),
        ("", ""),
    ],
)
def test_column_key(header: str, key: str) -> None:
    assert column_key(header) == key


def test_full_row() -> None:
    record = {
        "Email": " Ann@Example.com ",
        "First Name": "Ann",
        "Last Name": "Smith",
        "Phone": "+44 20 7183 8750",
        "Time Zone": "Europe/London",
        "Stage": "MQL",
        "Owner ID": "owner-1",
        "User ID": "u-1",
        "Plan": " pro ",
        "Empty Trait": "  ",
    }
    parsed = _parse(7, record, None)
    assert parsed.line == 7
    assert parsed.email == "ann@example.com"
    assert parsed.user_id == "u-1"
    assert parsed.changes.set_fields() == {
        "email": "ann@example.com",
        "phone": "+442071838750",
        "first_name": "Ann",
        "last_name": "Smith",
        "timezone": "Europe/London",
        "owner_id": "owner-1",
        "lifecycle_stage": "mql",
    }
    assert parsed.changes.traits == {"plan": "pro"}


def test_minimal_row_touches_only_email() -> None:
    parsed = _parse(2, {"email": "a@b.co", "phone": "", "first_name": "  "}, None)
    assert parsed.changes.set_fields() == {"email": "a@b.co"}
    assert parsed.user_id is None
    assert parsed.changes.traits == {}


def test_phone_region_applies_to_national_numbers() -> None:
    parsed = _parse(2, {"email": "a@b.co", "mobile": "(415) 555-0123"}, "US")
    assert parsed.changes.phone == "+14155550123"


def test_short_and_long_records_are_tolerated() -> None:
    columns = resolve_columns(["email", "plan"])
    assert parse_row(3, ["a@b.co"], columns, None).changes.traits == {}
    assert parse_row(3, ["a@b.co", "pro", "surplus"], columns, None).changes.traits == {"plan": "pro"}


def test_mapping_syntax() -> None:
    assert parse_mapping(["E-mail=email", " Notes = ", "a=b=c"]) == {
        "E-mail": "email",
        "Notes": "",
        "a": "b=c",
    }
    with pytest.raises(Invalid) as info:
        parse_mapping(["no-equals-sign"])
    assert info.value.code == "invalid_mapping"


def test_company_country_and_tags_columns() -> None:
    parsed = _parse(
        2,
        {
            "email": "a@b.co",
            "Company": "Acme",
            "Company Website": "https://www.acme.example/x",
            "Tags": "VIP, fair;",
        },
        None,
    )
    assert (parsed.company_name, parsed.company_domain, parsed.tags) == (
        "Acme",
        "acme.example",
        ["fair", "vip"],
    )
    assert (
        _parse(2, {"email": "a@b.co", "phone": "030 1234567", "country": "de"}, None).changes.phone
        == "+49301234567"
    )


@pytest.mark.parametrize(
    ("record", "code"),
    [
        ({"email": "   "}, "missing_email"),
        ({"email": None}, "missing_email"),
        ({"email": "a@b.co", "company_domain": "not a domain"}, "invalid_domain"),
        ({"email": "a@b.co", "tags": "x" * 101}, "invalid_tag"),
        ({"email": "not-an-email"}, "invalid_email"),
        ({"email": "a@b.co", "phone": "12"}, "invalid_phone"),
        ({"email": "a@b.co", "phone": "(415) 555-0123"}, "invalid_phone"),
        ({"email": "a@b.co", "timezone": "Mars/Olympus"}, "invalid_timezone"),
        ({"email": "a@b.co", "stage": "prospect"}, "invalid_stage"),
    ],
)
def test_invalid_rows_are_refused(record: dict[str, str], code: str) -> None:
    with pytest.raises(Invalid) as info:
        _parse(4, record, None)
    assert info.value.code == code


def test_missing_email_message() -> None:
    with pytest.raises(Invalid, match="email is required"):
        _parse(4, {"email": "", "name": "x"}, None)


def test_unset_columns_stay_unset() -> None:
    changes = _parse(2, {"email": "a@b.co"}, None).changes
    assert changes.phone is UNSET
    assert changes.timezone is UNSET
    assert changes.lifecycle_stage is UNSET


def test_blank_alias_column_does_not_erase_a_value() -> None:
    parsed = _parse(2, {"Email": "a@b.co", "Phone": "+14155550123", "Mobile": ""}, None)
    assert parsed.changes.phone == "+14155550123"
