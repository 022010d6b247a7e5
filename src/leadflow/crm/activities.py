"""Activities logged by people (calls, meetings, notes, tasks, emails) and a lead's timeline.

Logging an activity on a contact makes it a lead; a call, email or meeting is the lead's first
response if nothing answered it before. Only tasks have a due date and can be done.

The timeline merges the logged activities with what the event log already holds about the person
(:data:`DERIVED`: emails sent, opened and clicked, page views, form submissions, stage and score band
changes, status changes and assignments, deals opened and moved), newest first. Each source is read
with one keyset query of at most a page plus one; the page is the newest of both, and its cursor
``(time, source, id)`` continues both sources exactly where it stopped (at one instant, activities
come before events).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import leads, people, queries, rules
from leadflow.crm.schemas import Activity, ActivityCreate, ActivityFields, TimelineEntry
from leadflow.events import service as events
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import BadRequest, Invalid, NotFound

#: Event names of the event log shown on a timeline, and the kind each entry gets (pages too).
DERIVED = {
    "leadflow.email_sent": "email_sent",
    "leadflow.email_opened": "email_opened",
    "leadflow.email_clicked": "email_clicked",
    "form.submitted": "form_submitted",
    "leadflow.stage_changed": "stage_changed",
    "leadflow.score_band_changed": "score_band_changed",
    leads.STATUS_CHANGED: "status_changed",
    leads.OWNER_ASSIGNED: "owner_assigned",
    "deal.created": "deal_created",
    "deal.stage_changed": "deal_stage_changed",
}
ACTIVITY, EVENT = 1, 0  # a source's rank: at one instant, activities first
_ALL_IDS = 2**62  # an id bound past every id: "everything at that instant"


def _row(conn: Connection, activity_id: int) -> Any:
    row = conn.execute(queries.ACTIVITY, {"activity_id": activity_id}).first()
    if row is None:
        raise NotFound(f"no activity {activity_id}", code="activity_not_found")
    return row


def _task_fields(kind: str, data: ActivityFields) -> None:
    if kind != "task" and (data.due_at is not None or data.done is not None):
        raise Invalid("only tasks have a due date and can be done", code="task_only")


def log(ctx: AppContext, data: ActivityCreate, *, actor: str) -> Activity:
    rules.kind(data.kind)
    _task_fields(data.kind, data)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        contact_id = leads.contact_of(conn, data.email)
        if data.owner_id is not None:
            people.check_owner(conn, data.owner_id)
        leads.ensure(conn, contact_id, now)
        row = {
            "contact_id": contact_id,
            "kind": data.kind,
            "subject": data.subject,
            "body": data.body,
            "due_at": data.due_at,
            "done_at": now if data.done else None,
            "owner_id": data.owner_id,
            "created_by": actor[:64],
            "occurred_at": data.occurred_at or now,
            "created_at": now,
        }
        activity_id = conn.execute(queries.INSERT_ACTIVITY, row).scalar_one()
        answered = queries.RESPONDED if data.kind in rules.RESPONSES else queries.TOUCH
        conn.execute(answered, {"lead": contact_id, "now": now})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.activity_logged",
            entity_type="contact",
            entity_id=contact_id,
            data={"activity_id": activity_id, "kind": data.kind},
        )
        return Activity.model_validate(_row(conn, activity_id), from_attributes=True)


def get(ctx: AppContext, activity_id: int) -> Activity:
    with ctx.db.read() as conn:
        return Activity.model_validate(_row(conn, activity_id), from_attributes=True)


def change(ctx: AppContext, activity_id: int, data: ActivityFields, *, actor: str) -> Activity:
    given = data.model_dump(exclude_unset=True)
    if "occurred_at" in given and given["occurred_at"] is None:
        raise Invalid("occurred_at cannot be cleared", code="invalid_occurred_at")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = _row(conn, activity_id)
        _task_fields(before.kind, data)
        if given.get("owner_id") is not None:
            people.check_owner(conn, given["owner_id"])
        if "done" in given:
            done = given.pop("done")
            given["done_at"] = (before.done_at or now) if done else None
        if given:
            conn.execute(queries.change_activity(activity_id, given))
            conn.execute(queries.TOUCH, {"lead": before.contact_id, "now": now})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.activity_changed",
            entity_type="contact",
            entity_id=before.contact_id,
            data={"activity_id": activity_id, "fields": sorted(given)},
        )
        return Activity.model_validate(_row(conn, activity_id), from_attributes=True)


def delete(ctx: AppContext, activity_id: int, *, actor: str) -> None:
    with ctx.db.write() as conn:
        before = _row(conn, activity_id)
        conn.execute(queries.DELETE_ACTIVITY, {"activity_id": activity_id})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.activity_deleted",
            entity_type="contact",
            entity_id=before.contact_id,
            data={"activity_id": activity_id, "kind": before.kind},
        )


def listing(
    ctx: AppContext,
    *,
    email: str | None,
    owner_id: str | None,
    kind: str | None,
    open_tasks: bool,
    after: int | None,
    limit: int,
) -> list[Activity]:
    """Activities newest first, of one lead, one owner or one kind; ``open_tasks``: tasks not done."""
    if kind is not None:
        rules.kind(kind)
    with ctx.db.read() as conn:
        contact_id = leads.contact_of(conn, email) if email else None
        query = queries.activities_page(
            contact_id=contact_id,
            owner_id=owner_id,
            kind=kind,
            open_tasks=open_tasks,
            after=after,
            limit=limit,
        )
        return [Activity.model_validate(row, from_attributes=True) for row in conn.execute(query)]


# ---- the timeline -------------------------------------------------------------------------------------


def _bounds(position: tuple[datetime, int, int] | None) -> tuple[Any, Any]:
    """Where each source continues after ``(time, source, id)``: its own entries before that id at
    that instant, the other source's all of that instant or none of it, by rank."""
    if position is None:
        return None, None
    at, source, entry_id = position
    activities = (at, entry_id if source == ACTIVITY else 0)
    logged = (at, entry_id if source == EVENT else _ALL_IDS)
    return activities, logged


def decode(cursor: str | None) -> tuple[datetime, int, int] | None:
    found = pagination.decode(cursor)
    if found is None:
        return None
    try:
        at, source, entry_id = datetime.fromisoformat(found["t"]), int(found["s"]), int(found["id"])
    except (KeyError, TypeError, ValueError):
        at, source, entry_id = None, -1, -1
    if at is None or at.tzinfo is None or source not in (ACTIVITY, EVENT) or not 0 < entry_id < _ALL_IDS:
        raise BadRequest("the cursor is not one this API issued", code="invalid_cursor")
    return at, source, entry_id


def _from_activity(row: Any) -> TimelineEntry:
    return TimelineEntry(
        source="activity",
        id=row.id,
        at=row.occurred_at,
        kind=row.kind,
        subject=row.subject,
        body=row.body,
        due_at=row.due_at,
        done_at=row.done_at,
        owner_id=row.owner_id,
    )


def _from_event(row: dict[str, Any]) -> TimelineEntry:
    page = row["type"] == "page"
    details: dict[str, Any] = {"properties": row.get("properties") or {}}
    if page:
        details["name"] = row.get("name")
    return TimelineEntry(
        source="event",
        id=row["id"],
        at=row["timestamp"],
        kind="page" if page else DERIVED.get(row["event"] or "", row["event"] or "event"),
        subject=row.get("name") if page else row["event"],
        details=details,
    )


def _rank(entry: TimelineEntry) -> tuple[datetime, int, int]:
    return entry.at, ACTIVITY if entry.source == "activity" else EVENT, entry.id


def timeline(
    ctx: AppContext, email: str, *, cursor: str | None, limit: int
) -> tuple[list[TimelineEntry], str | None]:
    """A lead's timeline page, newest first, and the cursor to the next page (None on the last)."""
    position = decode(cursor)
    activities_before, events_before = _bounds(position)
    with ctx.db.read() as conn:
        contact_id = leads.contact_of(conn, email)
        leads.read(conn, contact_id)
        logged = conn.execute(
            queries.timeline_activities(contact_id, before=activities_before, limit=limit + 1)
        )
        derived = events.timeline_of(conn, contact_id, list(DERIVED), before=events_before, limit=limit + 1)
    entries = [_from_activity(row) for row in logged] + [_from_event(row) for row in derived]
    entries.sort(key=_rank, reverse=True)
    page, next_cursor = pagination.paginate(
        entries[: limit + 1], limit, lambda e: {"t": e.at.isoformat(), "s": _rank(e)[1], "id": e.id}
    )
    return page, next_cursor


def contact_timeline(
    ctx: AppContext, contact_id: str, *, cursor: str | None, limit: int
) -> tuple[list[TimelineEntry], str | None]:
    """Any contact's whole timeline (the console's contact page): logged activities and every event
    of theirs (not only :data:`DERIVED`), newest first, paginated as :func:`timeline`. The contact
    need not be a lead; give the id it lives under (merged contacts' events moved to it)."""
    activities_before, events_before = _bounds(decode(cursor))
    with ctx.db.read() as conn:
        logged = conn.execute(
            queries.timeline_activities(contact_id, before=activities_before, limit=limit + 1)
        )
        found = events.for_contacts(conn, [contact_id], before=events_before, limit=limit + 1)
    entries = [_from_activity(row) for row in logged] + [_any_event(row) for row in found]
    entries.sort(key=_rank, reverse=True)
    return pagination.paginate(
        entries[: limit + 1], limit, lambda e: {"t": e.at.isoformat(), "s": _rank(e)[1], "id": e.id}
    )


def _any_event(row: dict[str, Any]) -> TimelineEntry:
    """An event as a timeline entry: a page view, a known event's kind, else its name or its type."""
    entry = _from_event(row)
    if row["type"] not in ("page", "track"):
        return entry.model_copy(update={"kind": row["type"], "subject": row.get("name") or row["event"]})
    return entry
