"""Lifecycle stages and the forward-only rule for automatic changes."""

from __future__ import annotations

import pytest

from leadflow.contacts import lifecycle
from leadflow.kernel.errors import Invalid


def test_stages_are_ranked_in_order() -> None:
    assert lifecycle.STAGES == ("visitor", "lead", "mql", "sql", "customer", "advocate")
    assert [lifecycle.rank(stage) for stage in lifecycle.STAGES] == list(range(6))


def test_rank_of_unknown_stage_raises() -> None:
    with pytest.raises(KeyError):
        lifecycle.rank("prospect")


@pytest.mark.parametrize("stage", lifecycle.STAGES)
def test_validate_accepts_every_stage(stage: str) -> None:
    assert lifecycle.validate(stage) == stage


@pytest.mark.parametrize("stage", ["", "MQL", "Lead", "prospect", " lead"])
def test_validate_refuses_unknown_stages(stage: str) -> None:
    with pytest.raises(Invalid, match="unknown lifecycle stage") as info:
        lifecycle.validate(stage)
    assert info.value.code == "invalid_stage"


@pytest.mark.parametrize(
    ("current", "proposed", "expected"),
    [
        ("visitor", "lead", "lead"),
        ("lead", "customer", "customer"),
        ("customer", "lead", "customer"),
        ("advocate", "visitor", "advocate"),
        ("sql", "sql", "sql"),
        ("mql", "sql", "sql"),
    ],
)
def test_forward_never_moves_back(current: str, proposed: str, expected: str) -> None:
    assert lifecycle.forward(current, proposed) == expected


@pytest.mark.parametrize(
    ("current", "has_email", "expected"),
    [
        ("visitor", True, "lead"),
        ("visitor", False, "visitor"),
        ("lead", True, "lead"),
        ("customer", True, "customer"),
        ("customer", False, "customer"),
    ],
)
def test_a_contact_with_email_is_at_least_a_lead(current: str, has_email: bool, expected: str) -> None:
    assert lifecycle.floor_for(current, has_email=has_email) == expected
