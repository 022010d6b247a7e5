"""Key scopes and what each grants."""

from __future__ import annotations

import pytest

from leadflow.auth.scopes import SCOPES, granted, parse_scopes
from leadflow.kernel.errors import Invalid


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["read"], ["read"]),
        (["admin", "ingest"], ["ingest", "admin"]),
        ([" write ", "read", "write"], ["read", "write"]),
        (["read", "", "  "], ["read"]),
        (("ingest", "read", "write", "admin"), list(SCOPES)),
    ],
)
def test_parse_scopes_trims_deduplicates_and_orders(given: list[str], expected: list[str]) -> None:
    assert parse_scopes(given) == expected


@pytest.mark.parametrize("given", [["root"], ["read", "Admin"], ["read", "delete"]])
def test_unknown_scopes_are_refused(given: list[str]) -> None:
    with pytest.raises(Invalid, match="unknown scope") as info:
        parse_scopes(given)
    assert info.value.code == "invalid_scope"


@pytest.mark.parametrize("given", [[], [""], ["  ", "\t"]])
def test_at_least_one_scope_is_needed(given: list[str]) -> None:
    with pytest.raises(Invalid, match="at least one scope") as info:
        parse_scopes(given)
    assert info.value.code == "invalid_scope"


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        (["ingest"], {"ingest"}),
        (["read"], {"read"}),
        (["write"], {"write", "read"}),
        (["admin"], {"ingest", "read", "write", "admin"}),
        (["ingest", "read"], {"ingest", "read"}),
        ([], set()),
        (["unknown"], set()),
    ],
)
def test_granted(scopes: list[str], expected: set[str]) -> None:
    assert granted(scopes) == frozenset(expected)


def test_ingest_key_can_never_read() -> None:
    assert "read" not in granted(["ingest"])
    assert "ingest" not in granted(["write"])
