"""Segment ``/v1/batch`` bodies and the rules for when an event happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.events import schemas
from leadflow.events.schemas import BatchDefaults, MessageError

RECEIVED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def track(**extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u1", "event": "Clicked", **extra}


def timestamp_of(raw: dict[str, Any], defaults: BatchDefaults = BatchDefaults()) -> datetime:
    result: datetime = schemas.to_row(raw, kind=None, received_at=RECEIVED, defaults=defaults)["timestamp"]
    return result


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2026-03-01T10:00:00+02:00", datetime(2026, 3, 1, 8, 0, tzinfo=UTC)),
        ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
        ("2026-03-01T10:00:00.250Z", datetime(2026, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)),
        ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, 0, tzinfo=UTC)),
    ],
)
def test_explicit_timestamp_is_used_as_is_in_utc(given: str, expected: datetime) -> None:
    result = timestamp_of(track(timestamp=given))
    assert result == expected
    assert result.utcoffset() == timedelta(0)


def test_explicit_timestamp_wins_over_original_timestamp() -> None:
    raw = track(
        timestamp="2026-03-01T10:00:00Z",
        originalTimestamp="2026-02-01T00:00:00Z",
        sentAt="2026-02-01T00:00:05Z",
    )
    assert timestamp_of(raw) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_original_timestamp_is_corrected_for_clock_skew() -> None:
    # The sender's clock is an hour behind: it sent 5 s after the event, we received at 09:00.
    raw = track(originalTimestamp="2026-03-02T08:00:00Z", sentAt="2026-03-02T08:00:05Z")
    assert timestamp_of(raw) == RECEIVED - timedelta(seconds=5)


def test_batch_sent_at_corrects_original_timestamp() -> None:
    defaults = BatchDefaults(sent_at=datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC))
    raw = track(originalTimestamp="2026-03-02T08:00:00Z")
    assert timestamp_of(raw, defaults) == RECEIVED - timedelta(seconds=30)


def test_message_sent_at_wins_over_batch_sent_at() -> None:
    defaults = BatchDefaults(sent_at=datetime(2026, 3, 2, 8, 0, 30, tzinfo=UTC))
    raw = track(originalTimestamp="2026-03-02T08:00:00Z", sentAt="2026-03-02T08:00:02Z")
    assert timestamp_of(raw, defaults) == RECEIVED - timedelta(seconds=2)


def test_original_timestamp_without_sent_at_is_used_as_is() -> None:
    raw = track(originalTimestamp="2026-03-02T08:00:00+01:00")
    assert timestamp_of(raw) == datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize("extra", [{}, {"timestamp": None, "originalTimestamp": None}, {"sentAt": "x"}])
def test_without_timestamps_the_event_happened_when_received(extra: dict[str, Any]) -> None:
    assert timestamp_of(track(**extra)) == RECEIVED


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"timestamp": 1767225600}, "timestamp"),
        ({"timestamp": "yesterday"}, "timestamp"),
        ({"timestamp": ""}, "timestamp"),
        ({"originalTimestamp": "2026-13-01T00:00:00Z"}, "originalTimestamp"),
        ({"originalTimestamp": "2026-03-01T00:00:00Z", "sentAt": ["now"]}, "sentAt"),
        ({"originalTimestamp": "2026-03-01T00:00:00Z", "sentAt": "soon"}, "sentAt"),
    ],
)
def test_bad_timestamps_are_refused(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(MessageError, match=f"'{field}'") as info:
        timestamp_of(track(**extra))
    assert info.value.code == "invalid_timestamp"


def test_timestamp_outside_the_datetime_range_is_refused() -> None:
    with pytest.raises(MessageError) as info:
        timestamp_of(track(timestamp="0001-01-01T00:00:00+01:00"))
    assert info.value.code == "invalid_timestamp"


def test_extreme_clock_skew_is_refused() -> None:
    raw = track(originalTimestamp="9999-12-31T00:00:00Z", sentAt="0001-01-01T00:00:00Z")
    with pytest.raises(MessageError) as info:
        timestamp_of(raw)
    assert info.value.code == "invalid_timestamp"


# --- batches ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "batch", None, {}, {"batch": {}}, {"batch": "x"}, {"messages": []}])
def test_body_must_hold_a_batch_array(body: Any) -> None:
    with pytest.raises(MessageError, match="'batch' array") as info:
        schemas.batch_rows(body, RECEIVED)
    assert info.value.code == "invalid_batch"


def test_empty_batch_has_no_rows() -> None:
    assert schemas.batch_rows({"batch": []}, RECEIVED) == []


def test_batch_rows_take_their_type_from_each_message() -> None:
    body = {
        "batch": [
            track(),
            {"type": "identify", "anonymousId": "a1"},
            {"type": "alias", "previousId": "a1", "userId": "u1"},
        ]
    }
    rows = schemas.batch_rows(body, RECEIVED)
    assert [r["type"] for r in rows] == ["track", "identify", "alias"]
    assert all(r["received_at"] == RECEIVED for r in rows)


def test_batch_of_2500_messages_is_accepted() -> None:
    rows = schemas.batch_rows({"batch": [track()] * 2500}, RECEIVED)
    assert len(rows) == schemas.MAX_BATCH_MESSAGES == 2500
    assert len({r["message_id"] for r in rows}) == 2500


def test_batch_of_2501_messages_is_refused_before_validation() -> None:
    with pytest.raises(MessageError, match="at most 2500 messages, this one has 2501") as info:
        schemas.batch_rows({"batch": [{"not": "valid"}] * 2501}, RECEIVED)
    assert info.value.code == "too_many_messages"
    assert info.value.details is None


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"type": "track", "userId": "u1"}, "no_event"),
        ({"userId": "u1"}, "invalid_type"),
        ("not an object", "invalid_message"),
        (track(properties={"blob": "x" * (33 * 1024)}), "message_too_large"),
        (track(timestamp="nope"), "invalid_timestamp"),
    ],
)
def test_one_bad_message_refuses_the_batch_and_names_its_index(bad: Any, code: str) -> None:
    with pytest.raises(MessageError, match=r"^batch\[2\]: ") as info:
        schemas.batch_rows({"batch": [track(), track(), bad, track()]}, RECEIVED)
    assert info.value.code == code
    assert info.value.details == {"index": 2}


def test_batch_context_and_integrations_fill_messages_lacking_them() -> None:
    body = {
        "context": {"library": {"name": "analytics-python"}},
        "integrations": {"All": False},
        "batch": [track(), track(context={}), track(context={"ip": "1.2.3.4"}, integrations={"X": True})],
    }
    rows = schemas.batch_rows(body, RECEIVED)
    assert rows[0]["context"] == rows[1]["context"] == {"library": {"name": "analytics-python"}}
    assert rows[0]["integrations"] == rows[1]["integrations"] == {"All": False}
    assert rows[2]["context"] == {"ip": "1.2.3.4"}
    assert rows[2]["integrations"] == {"X": True}


def test_batch_sent_at_is_applied_to_each_message() -> None:
    body = {"sentAt": "2026-03-02T08:01:00Z", "batch": [track(originalTimestamp="2026-03-02T08:00:00Z")]}
    assert schemas.batch_rows(body, RECEIVED)[0]["timestamp"] == RECEIVED - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"context": [1]}, "invalid_field"),
        ({"integrations": "all"}, "invalid_field"),
        ({"sentAt": "later"}, "invalid_timestamp"),
        ({"sentAt": 12}, "invalid_timestamp"),
    ],
)
def test_bad_batch_level_fields_are_refused_without_index(body: dict[str, Any], code: str) -> None:
    with pytest.raises(MessageError) as info:
        schemas.batch_rows({**body, "batch": [track()]}, RECEIVED)
    assert info.value.code == code
    assert info.value.details is None
    assert not info.value.message.startswith("batch[")


def test_batch_defaults_treat_empty_objects_as_absent() -> None:
    defaults = schemas.batch_defaults({"context": {}, "integrations": {}, "sentAt": None})
    assert defaults == BatchDefaults()
