"""``from_traits``: Segment identify traits split into profile columns and free-form traits."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow.contacts.changes import UNSET, ProfileChanges, from_traits


@pytest.mark.parametrize("traits", [None, {}])
def test_no_traits_change_nothing(traits: dict[str, Any] | None) -> None:
    changes = from_traits(traits)
    assert changes.set_fields() == {}
    assert changes.traits == {}
    assert changes.rejected == {}


def test_reserved_traits_go_to_columns_and_the_rest_to_traits() -> None:
    changes = from_traits(
        {
            "email": " Ann@Example.com ",
            "phone": "+44 20 7183 8750",
            "firstName": "Ann",
            "lastName": "Smith",
            "timezone": "Europe/London",
            "unsubscribed": False,
            "plan": "pro",
            "seats": 3,
        }
    )
    assert changes.set_fields() == {
        "email": "ann@example.com",
        "phone": "+442071838750",
        "first_name": "Ann",
        "last_name": "Smith",
        "timezone": "Europe/London",
        "subscription_status": "subscribed",
    }
    assert changes.traits == {"plan": "pro", "seats": 3}


@pytest.mark.parametrize(
    ("traits", "first", "last"),
    [
        ({"first_name": "Ann", "last_name": "Smith"}, "Ann", "Smith"),
        ({"firstName": "Ann", "first_name": "Other"}, "Ann", UNSET),
        ({"firstName": 7, "lastName": 8}, "7", "8"),
        ({"name": "Ada Lovelace"}, "Ada", "Lovelace"),
        ({"name": "  Jean Paul   Sartre "}, "Jean", "Paul   Sartre"),
        ({"name": "Cher"}, "Cher", UNSET),
        ({"name": "   "}, UNSET, UNSET),
        ({"name": 42}, UNSET, UNSET),
        ({"name": "Ada Lovelace", "lastName": "Byron"}, UNSET, "Byron"),
        ({"name": "Ada Lovelace", "firstName": "Augusta"}, "Augusta", UNSET),
    ],
)
def test_names(traits: dict[str, Any], first: Any, last: Any) -> None:
    changes = from_traits(traits)
    assert (changes.first_name, changes.last_name) == (first, last)
    assert "name" not in changes.traits


@pytest.mark.parametrize(
    ("key", "column"),
    [
        ("email", "email"),
        ("phone", "phone"),
        ("firstName", "first_name"),
        ("first_name", "first_name"),
        ("lastName", "last_name"),
        ("last_name", "last_name"),
        ("timezone", "timezone"),
    ],
)
def test_null_clears_the_column(key: str, column: str) -> None:
    changes = from_traits({key: None})
    assert changes.set_fields() == {column: None}
    assert changes.traits == {}


def test_null_custom_trait_is_kept_to_remove_it() -> None:
    assert from_traits({"plan": None}).traits == {"plan": None}


@pytest.mark.parametrize(("value", "status"), [(True, "unsubscribed"), (False, "subscribed")])
def test_unsubscribed_sets_subscription_status(value: bool, status: str) -> None:
    changes = from_traits({"unsubscribed": value})
    assert changes.subscription_status == status
    assert "unsubscribed" not in changes.traits


@pytest.mark.parametrize("value", ["true", 1, None])
def test_non_boolean_unsubscribed_leaves_status_alone(value: Any) -> None:
    assert from_traits({"unsubscribed": value}).subscription_status is UNSET


@pytest.mark.parametrize(
    ("key", "value", "kept"),
    [
        ("email", "not-an-email", "not-an-email"),
        ("phone", "12", "12"),
        ("phone", 12, 12),
        ("timezone", "Mars/Olympus", "Mars/Olympus"),
        ("timezone", 5, 5),
    ],
)
def test_invalid_values_leave_the_column_unset_and_are_kept_as_traits(
    key: str, value: Any, kept: Any
) -> None:
    changes = from_traits({key: value, "plan": "pro"})
    assert getattr(changes, key) is UNSET
    assert changes.traits == {"plan": "pro", key: kept}
    assert changes.rejected == {key: kept}


def test_one_invalid_value_does_not_block_the_others() -> None:
    changes = from_traits({"email": "bad@", "phone": "+14155550123", "firstName": "Ann"})
    assert changes.set_fields() == {"phone": "+14155550123", "first_name": "Ann"}
    assert changes.traits == {"email": "bad@"}


@pytest.mark.parametrize(("key", "value"), [("email", ""), ("email", "   "), ("phone", "  ")])
def test_blank_email_or_phone_is_ignored(key: str, value: str) -> None:
    changes = from_traits({key: value})
    assert getattr(changes, key) is UNSET
    assert changes.rejected == {}


@pytest.mark.parametrize("value", [42, ["ann@example.com"]])
def test_non_string_email_is_kept_as_a_trait(value: Any) -> None:
    changes = from_traits({"email": value})
    assert changes.email is UNSET
    assert "email" in changes.traits


def test_phone_region_applies_to_national_numbers() -> None:
    assert from_traits({"phone": "(415) 555-0123"}, phone_region="US").phone == "+14155550123"
    without_region = from_traits({"phone": "(415) 555-0123"})
    assert without_region.phone is UNSET
    assert without_region.traits == {"phone": "(415) 555-0123"}


def test_context_timezone_is_the_fallback() -> None:
    assert from_traits({}, {"timezone": "Europe/Berlin"}).timezone == "Europe/Berlin"


def test_trait_timezone_wins_over_context() -> None:
    context = {"timezone": "Europe/Berlin"}
    assert from_traits({"timezone": "Asia/Tokyo"}, context).timezone == "Asia/Tokyo"
    assert from_traits({"timezone": None}, context).timezone is None


@pytest.mark.parametrize("context", [{"timezone": 3}, {"timezone": None}, {}, None])
def test_context_without_a_string_timezone_is_ignored(context: dict[str, Any] | None) -> None:
    changes = from_traits({}, context)
    assert changes.timezone is UNSET
    assert changes.traits == {}


def test_invalid_context_timezone_leaves_the_column_unset() -> None:
    assert from_traits({}, {"timezone": "Mars/Olympus"}).timezone is UNSET


def test_set_fields_lists_only_touched_fields() -> None:
    changes = ProfileChanges(email=None, lifecycle_stage="lead", consent={"email": True})
    assert changes.set_fields() == {"email": None, "lifecycle_stage": "lead", "consent": {"email": True}}
    assert repr(UNSET) == "UNSET"


def test_non_boolean_unsubscribed_is_kept_as_a_trait() -> None:
    changes = from_traits({"unsubscribed": "yes please"})
    assert changes.subscription_status is UNSET
    assert changes.traits == {"unsubscribed": "yes please"}


def test_null_name_clears_first_and_last_name() -> None:
    changes = from_traits({"name": None})
    assert (changes.first_name, changes.last_name) == (None, None)


def test_invalid_context_time_zone_is_ignored_not_kept() -> None:
    changes = from_traits({"plan": "pro"}, {"timezone": "Nowhere/Land"})
    assert changes.timezone is UNSET
    assert changes.traits == {"plan": "pro"}
