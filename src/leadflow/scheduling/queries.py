"""Every statement the scheduling domain runs: profiles, busy times, bookings, pending requests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.kernel.db import Sample
from leadflow.scheduling.models import (
    BOOKED,
    CANCELED,
    scheduling_bookings,
    scheduling_busy,
    scheduling_profiles,
    scheduling_requests,
)

RESCHEDULED = "rescheduled"
_p, _b, _k, _r = scheduling_profiles.c, scheduling_busy.c, scheduling_bookings.c, scheduling_requests.c

PROFILE_INSERT = scheduling_profiles.insert()
PROFILE = sa.select(scheduling_profiles).where(_p.user_id == sa.bindparam("user_id"))
#: The consultant's row, locked: bookings for one consultant are decided one at a time (PostgreSQL;
#: SQLite has a single writer anyway).
PROFILE_LOCKED = PROFILE.with_for_update()
PROFILE_DELETE = scheduling_profiles.delete().where(_p.user_id == sa.bindparam("user_id"))
PROFILES = sa.select(scheduling_profiles).order_by(_p.user_id)
FEED_DONE = (
    scheduling_profiles.update()
    .where(_p.user_id == sa.bindparam("consultant"))
    .values(ics_refreshed_at=sa.bindparam("at"), ics_error=sa.bindparam("error"))
)

BUSY_INSERT = scheduling_busy.insert()
BUSY_CLEAR = scheduling_busy.delete().where(_b.user_id == sa.bindparam("user_id"))

BOOKING_INSERT = scheduling_bookings.insert()
BOOKING = sa.select(scheduling_bookings).where(_k.id == sa.bindparam("booking_id"))
BOOKING_BY_EXTERNAL = (
    sa.select(scheduling_bookings)
    .where(_k.external_id == sa.bindparam("external_id"))
    .order_by(_k.created_at.desc())
    .limit(1)
)
#: The booking a Calendly reschedule replaces: the person's latest one cancelled for a reschedule.
RESCHEDULED_OF = (
    sa.select(scheduling_bookings)
    .where(
        _k.email == sa.bindparam("email"),
        _k.source == "calendly",
        _k.status == CANCELED,
        _k.cancel_reason == RESCHEDULED,
    )
    .order_by(_k.canceled_at.desc())
    .limit(1)
)
LIVE_AT = sa.select(_k.id).where(
    _k.user_id == sa.bindparam("user_id"), _k.starts_at == sa.bindparam("starts_at"), _k.status == BOOKED
)
CANCEL = (
    scheduling_bookings.update()
    .where(_k.id == sa.bindparam("booking_id"), _k.status == BOOKED)
    .values(
        status=CANCELED,
        sequence=_k.sequence + 1,
        canceled_at=sa.bindparam("at"),
        updated_at=sa.bindparam("at"),
        cancel_reason=sa.bindparam("reason"),
    )
)
MOVE = (
    scheduling_bookings.update()
    .where(_k.id == sa.bindparam("booking_id"))
    .values(
        user_id=sa.bindparam("user_id"),
        starts_at=sa.bindparam("starts_at"),
        ends_at=sa.bindparam("ends_at"),
        status=BOOKED,
        sequence=_k.sequence + 1,
        external_id=sa.bindparam("external_id"),
        canceled_at=None,
        cancel_reason=None,
        updated_at=sa.bindparam("at"),
    )
)
MOVE_TO_SURVIVOR = [
    table.update()
    .where(table.c.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
    for table in (scheduling_bookings, scheduling_requests)
]

REQUEST_INSERT = scheduling_requests.insert()


def busy_between(user_ids: Sequence[str], low: datetime, high: datetime) -> sa.Select[Any]:
    """Busy intervals of these consultants overlapping ``[low, high)``: live bookings and feed events."""
    bookings = sa.select(_k.user_id, _k.starts_at, _k.ends_at).where(
        _k.user_id.in_(user_ids), _k.status == BOOKED, _k.starts_at < high, _k.ends_at > low
    )
    feed = sa.select(_b.user_id, _b.starts_at, _b.ends_at).where(
        _b.user_id.in_(user_ids), _b.starts_at < high, _b.ends_at > low
    )
    return sa.select(sa.union_all(bookings, feed).subquery())


def bookings_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(scheduling_bookings).where(_k.contact_id.in_(contact_ids)).order_by(_k.id)


def requests_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(scheduling_requests).where(_r.contact_id.in_(contact_ids)).order_by(_r.id)


def erase(contact_ids: Sequence[str]) -> list[sa.Delete]:
    """Erasure: the person's bookings and requests go with them."""
    return [
        scheduling_bookings.delete().where(_k.contact_id.in_(contact_ids)),
        scheduling_requests.delete().where(_r.contact_id.in_(contact_ids)),
    ]


def bookings_page(user_id: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(scheduling_bookings).order_by(_k.id).limit(limit)
    if user_id:
        query = query.where(_k.user_id == user_id)
    return query.where(_k.id > after) if after else query


def requests_page(status: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(scheduling_requests).order_by(_r.id).limit(limit)
    if status:
        query = query.where(_r.status == status)
    return query.where(_r.id > after) if after else query


_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: busy_between(["u"], _AT, _AT),
    lambda: bookings_of(["c"]),
    lambda: requests_of(["c"]),
    lambda: erase(["c"]),
    lambda: bookings_page("u", "a", 10),
    lambda: requests_page("pending", "a", 10),
]


def profile_update(user_id: str, values: dict[str, Any]) -> sa.Update:
    return scheduling_profiles.update().where(_p.user_id == user_id).values(**values)


SAMPLES.append(lambda: profile_update("u", {"slot_minutes": 30}))
