"""Activities: calls, meetings, notes, tasks and the events of a lead's timeline."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    OPEN_TASK,
    crm_activities,
)
from leadflow.kernel.db import Sample

_a = crm_activities.c

INSERT_ACTIVITY = crm_activities.insert().returning(_a.id)
ACTIVITY = sa.select(crm_activities).where(_a.id == sa.bindparam("activity_id"))
DELETE_ACTIVITY = crm_activities.delete().where(_a.id == sa.bindparam("activity_id"))


def change_activity(activity_id: int, values: dict[str, Any]) -> sa.Update:
    return crm_activities.update().where(_a.id == activity_id).values(values)


def activities_page(
    *,
    contact_id: str | None,
    owner_id: str | None,
    kind: str | None,
    open_tasks: bool,
    after: int | None,
    limit: int,
) -> sa.Select[Any]:
    """Activities newest first by id; ``open_tasks``: tasks not done, soonest due first."""
    query = sa.select(crm_activities).limit(limit)
    if contact_id is not None:
        query = query.where(_a.contact_id == contact_id)
    if owner_id is not None:
        query = query.where(_a.owner_id == owner_id)
    if kind is not None:
        query = query.where(_a.kind == kind)
    if open_tasks:
        query = query.where(OPEN_TASK)
    if after is not None:
        query = query.where(_a.id < after)
    return query.order_by(_a.id.desc())


def timeline_activities(
    contact_id: str, *, before: tuple[datetime, int] | None, limit: int
) -> sa.Select[Any]:
    """A contact's activities newest first by ``(occurred_at, id)``, continuing before ``before``."""
    query = sa.select(crm_activities).where(_a.contact_id == contact_id)
    if before is not None:
        stamp, activity_id = before
        query = query.where(
            sa.or_(_a.occurred_at < stamp, sa.and_(_a.occurred_at == stamp, _a.id < activity_id))
        )
    return query.order_by(_a.occurred_at.desc(), _a.id.desc()).limit(limit)


#: Activities follow a merged contact to its survivor.
MOVE_ACTIVITIES = (
    crm_activities.update()
    .where(_a.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)


def activities_by(creators: Sequence[str]) -> sa.Select[Any]:
    """Which of these ``created_by`` keys (an automation's idempotency key) already logged an activity."""
    return sa.select(_a.created_by, _a.contact_id).where(_a.created_by.in_(list(creators)))


INSERT_ACTIVITIES = crm_activities.insert()


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: change_activity(1, {"subject": "s"}),
    lambda: activities_page(contact_id="c", owner_id="u", kind="task", open_tasks=True, after=5, limit=10),
    lambda: timeline_activities("c1", before=(_AT, 3), limit=10),
    lambda: activities_by(["journey:1.0"]),
]
