"""Working-hours arithmetic: nights, weekends and DST in the user's own zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from leadflow.crm.hours import add_working, is_working

WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def test_two_hours_inside_a_day() -> None:
    start = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # Wednesday
    assert add_working(WEEKDAYS, "UTC", start, timedelta(hours=2)) == datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_across_the_night() -> None:
    start = datetime(2026, 3, 4, 16, 0, tzinfo=UTC)
    assert add_working(WEEKDAYS, "UTC", start, timedelta(hours=2)) == datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def test_across_a_weekend_in_the_owners_zone() -> None:
    start = datetime(2026, 3, 6, 15, 30, tzinfo=UTC)  # Friday 16:30 in Berlin (UTC+1)
    due = add_working(WEEKDAYS, "Europe/Berlin", start, timedelta(hours=2))
    assert due == datetime(2026, 3, 9, 9, 30, tzinfo=UTC)  # Monday 10:30 Berlin


def test_before_opening_starts_at_opening() -> None:
    start = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
    assert add_working(WEEKDAYS, "UTC", start, timedelta(hours=2)) == datetime(2026, 3, 4, 11, 0, tzinfo=UTC)


def test_dst_spring_forward_keeps_local_opening_hours() -> None:
    # Berlin springs forward on Sunday 2026-03-29: Friday 16:00 CET (15:00 UTC) + 2 h → Monday 10:00 CEST
    start = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)
    due = add_working(WEEKDAYS, "Europe/Berlin", start, timedelta(hours=2))
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


def test_dst_inside_a_working_interval_counts_the_wall_clock() -> None:
    hours = {"sun": [["01:00", "04:00"]]}  # 02:00-03:00 does not exist that night
    start = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # 01:00 CET
    due = add_working(hours, "Europe/Berlin", start, timedelta(hours=2))
    assert due == datetime(2026, 3, 29, 2, 0, tzinfo=UTC)  # only 2 real hours in that interval: all used
    three = add_working(hours, "Europe/Berlin", start, timedelta(hours=3))
    assert three == datetime(2026, 4, 5, 0, 0, tzinfo=UTC)  # the third: next Sunday 01:00-02:00 CEST
    one_hour = add_working(hours, "Europe/Berlin", start, timedelta(hours=1))
    assert one_hour == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def test_is_working_in_the_users_zone() -> None:
    monday_9_utc = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert is_working(WEEKDAYS, "UTC", monday_9_utc)
    assert is_working(WEEKDAYS, "Europe/Berlin", monday_9_utc)  # 10:00 there
    assert not is_working(WEEKDAYS, "America/New_York", monday_9_utc)  # 05:00 there
    assert not is_working(WEEKDAYS, "UTC", datetime(2026, 3, 9, 17, 0, tzinfo=UTC))  # end excluded
    assert not is_working(WEEKDAYS, "UTC", datetime(2026, 3, 8, 12, 0, tzinfo=UTC))  # Sunday


def test_no_hours_counts_elapsed_time() -> None:
    start = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)
    assert add_working({}, "UTC", start, timedelta(hours=2)) == start + timedelta(hours=2)
