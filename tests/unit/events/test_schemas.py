"""Validation of single Segment messages and their conversion into event rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.events import schemas
from leadflow.events.schemas import MessageError
from leadflow.kernel import jsonutil
from leadflow.kernel.errors import BadRequest

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def row(kind: str | None = None, **raw: Any) -> dict[str, Any]:
    return schemas.to_row(raw, kind=kind, received_at=RECEIVED)


def error(kind: str | None = None, **raw: Any) -> MessageError:
    with pytest.raises(MessageError) as info:
        schemas.to_row(raw, kind=kind, received_at=RECEIVED)
    return info.value


@pytest.mark.parametrize("kind", ["identify", "track", "page", "screen", "group"])
def test_every_message_needs_a_user_or_anonymous_id(kind: str) -> None:
    raw = {"event": "Signed Up", "groupId": "g1"}
    with pytest.raises(MessageError, match="'userId' or 'anonymousId'") as info:
        schemas.to_row(raw, kind=kind, received_at=RECEIVED)
    assert info.value.code == "no_user_anon_id"


@pytest.mark.parametrize("ids", [{"userId": "u1"}, {"anonymousId": "a1"}])
def test_either_id_alone_is_enough(ids: dict[str, str]) -> None:
    result = row("identify", **ids)
    assert result["user_id"] == ids.get("userId")
    assert result["anonymous_id"] == ids.get("anonymousId")


def test_empty_string_ids_count_as_missing() -> None:
    assert error("identify", userId="", anonymousId="").code == "no_user_anon_id"


@pytest.mark.parametrize(
    ("kind", "raw", "code"),
    [
        ("track", {"userId": "u1"}, "no_event"),
        ("track", {"userId": "u1", "event": ""}, "no_event"),
        ("group", {"userId": "u1"}, "no_group_id"),
        ("group", {"userId": "u1", "groupId": ""}, "no_group_id"),
        ("alias", {"userId": "u1"}, "no_previous_id"),
        ("alias", {"previousId": "anon-1"}, "no_user_id"),
        ("alias", {"previousId": "anon-1", "anonymousId": "anon-1"}, "no_user_id"),
    ],
)
def test_type_specific_required_fields(kind: str, raw: dict[str, Any], code: str) -> None:
    assert error(kind, **raw).code == code


def test_alias_needs_no_anonymous_id() -> None:
    result = row("alias", previousId="anon-1", userId="u1")
    assert (result["previous_id"], result["user_id"], result["anonymous_id"]) == ("anon-1", "u1", None)


def test_track_row_shape() -> None:
    result = row(
        "track", userId="u1", event="Order Completed", properties={"total": 10}, traits={"plan": "pro"}
    )
    assert result["type"] == "track"
    assert result["event"] == "Order Completed"
    assert result["properties"] == {"total": 10}
    assert result["traits"] == {"plan": "pro"}
    assert result["name"] is None
    assert result["group_id"] is None
    assert result["source"] == "segment"
    assert result["received_at"] == RECEIVED


def test_fields_foreign_to_the_type_are_ignored() -> None:
    result = row("identify", userId="u1", event="Ignored", groupId="g1", previousId="p1", name="n")
    assert (result["event"], result["group_id"], result["previous_id"], result["name"]) == (None,) * 4


def test_explicit_kind_overrides_type_in_body() -> None:
    assert row("identify", type="track", userId="u1")["type"] == "identify"


@pytest.mark.parametrize("kind", [None, "", "login", "Track"])
def test_unknown_type_is_refused(kind: str | None) -> None:
    assert error(type=kind, userId="u1").code == "invalid_type"


@pytest.mark.parametrize("kind", [["track"], {"a": 1}])
def test_unhashable_type_is_refused(kind: Any) -> None:
    assert error(type=kind, userId="u1").code == "invalid_type"


@pytest.mark.parametrize("raw", [[], "track", 42, None])
def test_message_must_be_an_object(raw: Any) -> None:
    with pytest.raises(MessageError, match="JSON object") as info:
        schemas.to_row(raw, kind="track", received_at=RECEIVED)
    assert info.value.code == "invalid_message"


def test_message_id_is_generated_when_absent() -> None:
    first = row("identify", userId="u1")["message_id"]
    second = row("identify", userId="u1", messageId="")["message_id"]
    assert uuid.UUID(first).version == 4
    assert uuid.UUID(second).version == 4
    assert first != second


@pytest.mark.parametrize(("given", "expected"), [("m-1", "m-1"), (123, "123"), ("x" * 100, "x" * 100)])
def test_message_id_is_kept(given: Any, expected: str) -> None:
    assert row("identify", userId="u1", messageId=given)["message_id"] == expected


@pytest.mark.parametrize("given", ["x" * 101, True, 1.5, {"id": 1}, ["m"]])
def test_bad_message_id_is_refused(given: Any) -> None:
    assert error("identify", userId="u1", messageId=given).code == "invalid_message_id"


@pytest.mark.parametrize(("given", "expected"), [(42, "42"), (0, "0"), (1.5, "1.5"), ("u-1", "u-1")])
@pytest.mark.parametrize("field", ["userId", "anonymousId"])
def test_numeric_ids_are_stringified(field: str, given: Any, expected: str) -> None:
    column = {"userId": "user_id", "anonymousId": "anonymous_id"}[field]
    assert row("identify", **{field: given})[column] == expected


@pytest.mark.parametrize(
    ("kind", "field"),
    [
        ("identify", "userId"),
        ("identify", "anonymousId"),
        ("group", "groupId"),
        ("alias", "previousId"),
    ],
)
@pytest.mark.parametrize("value", [True, False, ["u1"], {"id": "u1"}, "x" * 256])
def test_bad_ids_are_refused(kind: str, field: str, value: Any) -> None:
    raw = {"userId": "u1", "groupId": "g1", "previousId": "p1", field: value}
    with pytest.raises(MessageError, match=f"'{field}'") as info:
        schemas.to_row(raw, kind=kind, received_at=RECEIVED)
    assert info.value.code == "invalid_id"


def test_id_of_255_characters_is_accepted() -> None:
    assert row("identify", userId="u" * 255)["user_id"] == "u" * 255


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("track", "event", 42),
        ("track", "event", "e" * 256),
        ("page", "name", ["Home"]),
        ("screen", "name", "n" * 256),
    ],
)
def test_bad_names_are_refused(kind: str, field: str, value: Any) -> None:
    raw = {"userId": "u1", "event": "E", field: value}
    assert error(kind, **raw).code == "invalid_field"


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_page_and_screen_keep_their_name(kind: str) -> None:
    assert row(kind, userId="u1", name="Pricing")["name"] == "Pricing"


@pytest.mark.parametrize("field", ["properties", "traits", "context", "integrations"])
@pytest.mark.parametrize("value", [[1, 2], "text", 3, True])
def test_non_object_fields_are_refused(field: str, value: Any) -> None:
    with pytest.raises(MessageError, match=f"'{field}' must be an object") as info:
        schemas.to_row({"userId": "u1", field: value}, kind="identify", received_at=RECEIVED)
    assert info.value.code == "invalid_field"


def test_empty_objects_become_none() -> None:
    result = row("identify", userId="u1", properties={}, traits={}, context={}, integrations={})
    assert [result[f] for f in ("properties", "traits", "context", "integrations")] == [None] * 4


def test_page_category_is_folded_into_properties() -> None:
    assert row("page", userId="u1", category="Docs")["properties"] == {"category": "Docs"}
    folded = row("page", userId="u1", category="Docs", properties={"path": "/a"})["properties"]
    assert folded == {"category": "Docs", "path": "/a"}


def test_page_category_in_properties_wins() -> None:
    result = row("page", userId="u1", category="Top", properties={"category": "Inner"})
    assert result["properties"] == {"category": "Inner"}


@pytest.mark.parametrize("kind", ["track", "screen"])
def test_category_is_folded_only_for_page(kind: str) -> None:
    assert row(kind, userId="u1", event="E", category="Docs")["properties"] is None


def test_message_over_32_kb_is_refused() -> None:
    big = {"type": "track", "userId": "u1", "event": "E", "properties": {"blob": "x" * (32 * 1024)}}
    with pytest.raises(MessageError, match="32 KB") as info:
        schemas.to_row(big, kind=None, received_at=RECEIVED)
    assert info.value.code == "message_too_large"


def test_message_of_exactly_32_kb_is_accepted() -> None:
    raw: dict[str, Any] = {"type": "track", "userId": "u1", "event": "E", "properties": {"blob": ""}}
    overhead = len(jsonutil.dumpb(raw))
    raw["properties"]["blob"] = "x" * (schemas.MAX_MESSAGE_BYTES - overhead)
    assert len(jsonutil.dumpb(raw)) == schemas.MAX_MESSAGE_BYTES
    assert schemas.to_row(raw, kind=None, received_at=RECEIVED)["event"] == "E"


def test_single_row_skips_the_size_check() -> None:
    big = {"userId": "u1", "event": "E", "properties": {"blob": "x" * (40 * 1024)}}
    assert schemas.single_row("track", big, RECEIVED)["properties"] == big["properties"]


def test_errors_outside_a_batch_have_no_index() -> None:
    failure = error("track", userId="u1")
    assert failure.details is None
    assert not failure.message.startswith("batch[")


def test_message_error_is_a_bad_request() -> None:
    assert isinstance(error("track", userId="u1"), BadRequest)
