"""Consultants: a CRM user with a booking profile (services, weekly hours in the user's zone, slot
length, buffers, notice, horizon, an optional ICS feed). Changes are audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.scheduling import queries
from leadflow.scheduling.schemas import Profile, ProfileCreate, ProfileFields, zone_of
from leadflow.scheduling.slots import Rules

ENTITY = "scheduling_profile"


def row(conn: Connection, user_id: str, *, lock: bool = False) -> Any:
    found = conn.execute(queries.PROFILE_LOCKED if lock else queries.PROFILE, {"user_id": user_id}).first()
    if found is None:
        raise NotFound(f"no consultant {user_id[:40]}", code="consultant_not_found")
    return found


def consultants(conn: Connection) -> list[tuple[Any, Any]]:
    """(profile, CRM user) of every consultant whose user still exists, in id order."""
    found = []
    for profile in conn.execute(queries.PROFILES):
        try:
            found.append((profile, crm.user_row(conn, profile.user_id)))
        except NotFound:
            continue
    return found


def rules_of(profile: Any, timezone: str) -> Rules:
    return Rules(
        zone=zone_of(timezone),
        availability=profile.availability,
        slot_minutes=profile.slot_minutes,
        buffer_before=profile.buffer_before,
        buffer_after=profile.buffer_after,
        min_notice=profile.min_notice,
        horizon_days=profile.horizon_days,
    )


def duration_of(profile: Any, service: str) -> int | None:
    """Minutes of ``service`` if this consultant offers it."""
    for offered in profile.services:
        if offered["name"] == service:
            return int(offered["duration"])
    return None


def _view(profile: Any, user: Any) -> Profile:
    return Profile.model_validate({**profile._mapping, "timezone": user.timezone})


def _values(data: ProfileFields) -> dict[str, Any]:
    values = data.model_dump(exclude={"user_id"})
    values["services"] = [s.model_dump() for s in data.services]
    return values


def _audit(conn: Connection, ctx: AppContext, actor: str, action: str, user_id: str) -> None:
    audit.record(conn, ctx.clock, actor=actor, action=action, entity_type=ENTITY, entity_id=user_id, data={})


def create(ctx: AppContext, data: ProfileCreate, *, actor: str) -> Profile:
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        try:
            user = crm.user_row(conn, data.user_id)
        except NotFound as exc:
            raise Invalid(exc.message, code="user_not_found") from None
        if conn.execute(queries.PROFILE, {"user_id": data.user_id}).first() is not None:
            raise Conflict(f"user {data.user_id} is a consultant already", code="consultant_exists")
        values = {**_values(data), "user_id": data.user_id, "created_at": now, "updated_at": now}
        conn.execute(queries.PROFILE_INSERT, {**values, "ics_refreshed_at": None, "ics_error": None})
        _audit(conn, ctx, actor, "scheduling.consultant_created", data.user_id)
        return _view(row(conn, data.user_id), user)


def get(ctx: AppContext, user_id: str) -> Profile:
    with ctx.db.read() as conn:
        return _view(row(conn, user_id), crm.user_row(conn, user_id))


def listing(ctx: AppContext) -> list[Profile]:
    with ctx.db.read() as conn:
        return [_view(profile, user) for profile, user in consultants(conn)]


def update(ctx: AppContext, user_id: str, data: ProfileFields, *, actor: str) -> Profile:
    with ctx.db.write() as conn:
        row(conn, user_id)
        values = {**_values(data), "updated_at": ctx.clock.now()}
        conn.execute(queries.profile_update(user_id, values))
        _audit(conn, ctx, actor, "scheduling.consultant_updated", user_id)
        return _view(row(conn, user_id), crm.user_row(conn, user_id))


def delete(ctx: AppContext, user_id: str, *, actor: str) -> None:
    """A consultant is no longer bookable; their bookings and feed stay until they end."""
    with ctx.db.write() as conn:
        row(conn, user_id)
        conn.execute(queries.BUSY_CLEAR, {"user_id": user_id})
        conn.execute(queries.PROFILE_DELETE, {"user_id": user_id})
        _audit(conn, ctx, actor, "scheduling.consultant_deleted", user_id)
