"""Lifecycle stages and the forward-only rule for automatic changes."""

from __future__ import annotations

import pytest

from leadflow.contacts import stages
from leadflow.kernel.errors import Invalid


def test_stages_are_ranked_in_order() -> None:
    assert stages.STAGES == ("visitor", "lead", "mql", "sql", "customer", "advocate")
    assert [stages.rank(stage) for stage in stages.STAGES] == list(range(6))


def test_rank_of_unknown_stage_raises() -> None:
    with pytest.raises(KeyError):
        stages.rank("prospect")


@pytest.mark.parametrize("stage", stages.STAGES)
def test_validate_accepts_every_stage(stage: str) -> None:
    assert stages.validate(stage) == stage


@pytest.mark.parametrize("stage", ["", "MQL", "Lead", "prospect", " lead"])
def test_validate_refuses_unknown_stages(stage: str) -> None:
    with pytest.raises(Invalid, match="unknown lifecycle stage") as info:
        stages.validate(stage)
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
    assert stages.forward(current, proposed) == expected


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
    assert stages.floor_for(current, has_email=has_email) == expected
