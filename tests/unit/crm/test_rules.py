"""The CRM's value rules: roles, IANA time zones, working hours, statuses and their reasons."""

from __future__ import annotations

import pytest

from leadflow.crm import rules
from leadflow.kernel.errors import Invalid


def test_time_zones_are_iana_names() -> None:
    assert rules.timezone("Europe/Berlin") == "Europe/Berlin"
    assert rules.timezone("UTC") == "UTC"
    for bad in ("Mars/Olympus", "+02:00", "", "europe/berlin"):
        with pytest.raises(Invalid) as caught:
            rules.timezone(bad)
        assert caught.value.code == "invalid_timezone"


def test_working_hours_are_sorted_non_overlapping_intervals_per_weekday() -> None:
    hours = {"mon": [["13:00", "17:00"], ["09:00", "12:00"]], "sat": [], "fri": [["00:00", "24:00"]]}
    assert rules.working_hours(hours) == {
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "sat": [],
        "fri": [["00:00", "24:00"]],
    }
    for bad in (
        {"monday": [["09:00", "17:00"]]},
        {"mon": [["09:00"]]},
        {"mon": [["9:00", "17:00"]]},
        {"mon": [["17:00", "09:00"]]},
        {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]},
        {"mon": [["09:00", "25:00"]]},
        {"mon": "09:00-17:00"},
        [],
    ):
        with pytest.raises(Invalid) as caught:
            rules.working_hours(bad)
        assert caught.value.code == "invalid_working_hours", bad


def test_unqualified_and_lost_need_a_reason_and_only_they_take_one() -> None:
    assert rules.reason_for("lost", "  chose a competitor ") == "chose a competitor"
    assert rules.reason_for("unqualified", "student, no budget") == "student, no budget"
    assert rules.reason_for("qualified", None) is None
    assert rules.reason_for("contacted", "   ") is None
    for status, reason, code in (
        ("lost", None, "reason_required"),
        ("unqualified", "  ", "reason_required"),
        ("qualified", "because", "reason_not_allowed"),
    ):
        with pytest.raises(Invalid) as caught:
            rules.reason_for(status, reason)
        assert caught.value.code == code


def test_roles_statuses_and_kinds_are_closed_lists() -> None:
    assert rules.role("sales") == "sales"
    assert rules.status("customer") == "customer"
    assert rules.kind("task") == "task"
    for check, value, code in (
        (rules.role, "owner", "invalid_role"),
        (rules.status, "won", "invalid_status"),
        (rules.kind, "sms", "invalid_kind"),
    ):
        with pytest.raises(Invalid) as caught:
            check(value)
        assert caught.value.code == code
