"""The business's users (the owners leads are assigned to) and their teams.

A user's email is unique (compared lower-cased); a user who owns leads or activities cannot be
deleted (deactivate them: ``active`` false), so a lead never points at nobody. Deleting a team leaves
its members without a team; deleting a user who leads a team leaves the team without a lead.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.crm import queries, rules
from leadflow.crm.schemas import Team, TeamCreate, TeamFields, User, UserCreate, UserFields
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id

ENTITY_USER, ENTITY_TEAM = "crm_user", "crm_team"


def team_row(conn: Connection, team_id: str) -> Any:
    row = conn.execute(queries.TEAM, {"team_id": team_id}).first()
    if row is None:
        raise NotFound(f"no team {team_id}", code="team_not_found")
    return row


def user_row(conn: Connection, user_id: str) -> Any:
    row = conn.execute(queries.USER, {"user_id": user_id}).first()
    if row is None:
        raise NotFound(f"no user {user_id}", code="user_not_found")
    return row


def check_owner(conn: Connection, user_id: str) -> None:
    """``user_id`` may own a lead or an activity: it exists and is active (422 otherwise, the id being
    a value of the body)."""
    row = conn.execute(queries.USER, {"user_id": user_id}).first()
    if row is None:
        raise Invalid(f"no user {user_id}", code="user_not_found")
    if not row.active:
        raise Invalid(f"user {user_id} is inactive", code="user_inactive")


def _check_team_ref(conn: Connection, team_id: str | None) -> None:
    if team_id is not None and conn.execute(queries.TEAM, {"team_id": team_id}).first() is None:
        raise Invalid(f"no team {team_id}", code="team_not_found")


def _check_lead_ref(conn: Connection, user_id: str | None) -> None:
    if user_id is not None and conn.execute(queries.USER, {"user_id": user_id}).first() is None:
        raise Invalid(f"no user {user_id}", code="user_not_found")


def _team_name_free(conn: Connection, name: str, team_id: str | None) -> None:
    holder = conn.execute(queries.TEAM_NAMED, {"name": name}).scalar()
    if holder is not None and holder != team_id:
        raise Conflict(f"a team named {name!r} exists", code="team_name_taken")


def _email_free(conn: Connection, email: str, user_id: str | None) -> None:
    holder = conn.execute(queries.USER_WITH_EMAIL, {"email": email}).scalar()
    if holder is not None and holder != user_id:
        raise Conflict(f"a user with email {email} exists", code="user_email_taken")


# ---- teams ------------------------------------------------------------------------------------------


def create_team(ctx: AppContext, data: TeamCreate, *, actor: str) -> Team:
    now, team_id, name = ctx.clock.now(), new_id(), data.name.strip()
    with ctx.db.write() as conn:
        _team_name_free(conn, name, None)
        _check_lead_ref(conn, data.lead_user_id)
        row = {
            "id": team_id,
            "name": name,
            "lead_user_id": data.lead_user_id,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(queries.INSERT_TEAM, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.team_created",
            entity_type=ENTITY_TEAM,
            entity_id=team_id,
            data=data.model_dump(mode="json"),
        )
        return Team.model_validate(team_row(conn, team_id), from_attributes=True)


def list_teams(ctx: AppContext, *, after: str | None, limit: int) -> list[Team]:
    with ctx.db.read() as conn:
        rows = conn.execute(queries.teams_page(after=after, limit=limit))
        return [Team.model_validate(row, from_attributes=True) for row in rows]


def get_team(ctx: AppContext, team_id: str) -> Team:
    with ctx.db.read() as conn:
        return Team.model_validate(team_row(conn, team_id), from_attributes=True)


def update_team(ctx: AppContext, team_id: str, data: TeamFields, *, actor: str) -> Team:
    values = data.model_dump(exclude_unset=True)
    if "name" in values:
        if values["name"] is None:
            raise Invalid("a team needs a name", code="invalid_name")
        values["name"] = values["name"].strip()
    with ctx.db.write() as conn:
        team_row(conn, team_id)
        if "name" in values:
            _team_name_free(conn, values["name"], team_id)
        _check_lead_ref(conn, values.get("lead_user_id"))
        conn.execute(queries.change_team(team_id, {**values, "updated_at": ctx.clock.now()}))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.team_updated",
            entity_type=ENTITY_TEAM,
            entity_id=team_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        return Team.model_validate(team_row(conn, team_id), from_attributes=True)


def delete_team(ctx: AppContext, team_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        team_row(conn, team_id)
        conn.execute(queries.LEAVE_TEAM, {"team": team_id})
        conn.execute(queries.DELETE_TEAM, {"team_id": team_id})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.team_deleted",
            entity_type=ENTITY_TEAM,
            entity_id=team_id,
        )


# ---- users ------------------------------------------------------------------------------------------


def _user_values(data: UserFields) -> dict[str, Any]:
    """The given fields, validated (email canonical, IANA time zone, working hours)."""
    values = data.model_dump(exclude_unset=True)
    for name in ("name", "email", "role", "timezone", "working_hours", "capacity", "active"):
        if name in values and values[name] is None:
            raise Invalid(f"{name} cannot be null", code=f"invalid_{name}")
    if "name" in values:
        values["name"] = values["name"].strip()
    if "email" in values:
        values["email"] = contacts.canonical_email(values["email"])
    if "role" in values:
        rules.role(values["role"])
    if "timezone" in values:
        rules.timezone(values["timezone"])
    if "working_hours" in values:
        values["working_hours"] = rules.working_hours(values["working_hours"])
    return values


def create_user(ctx: AppContext, data: UserCreate, *, actor: str) -> User:
    values = _user_values(data)
    now = ctx.clock.now()
    row = {
        "id": new_id(),
        "role": "sales",
        "team_id": None,
        "timezone": "UTC",
        "working_hours": rules.DEFAULT_HOURS,
        "capacity": 1,
        "active": True,
        **values,
        "created_at": now,
        "updated_at": now,
    }
    with ctx.db.write() as conn:
        _email_free(conn, row["email"], None)
        _check_team_ref(conn, row["team_id"])
        conn.execute(queries.INSERT_USER, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.user_created",
            entity_type=ENTITY_USER,
            entity_id=row["id"],
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        return User.model_validate(user_row(conn, row["id"]), from_attributes=True)


def list_users(
    ctx: AppContext, *, after: str | None, team_id: str | None = None, active: bool | None = None, limit: int
) -> list[User]:
    with ctx.db.read() as conn:
        rows = conn.execute(queries.users_page(after=after, team_id=team_id, active=active, limit=limit))
        return [User.model_validate(row, from_attributes=True) for row in rows]


def get_user(ctx: AppContext, user_id: str) -> User:
    with ctx.db.read() as conn:
        return User.model_validate(user_row(conn, user_id), from_attributes=True)


def update_user(ctx: AppContext, user_id: str, data: UserFields, *, actor: str) -> User:
    values = _user_values(data)
    with ctx.db.write() as conn:
        user_row(conn, user_id)
        if "email" in values:
            _email_free(conn, values["email"], user_id)
        _check_team_ref(conn, values.get("team_id"))
        conn.execute(queries.change_user(user_id, {**values, "updated_at": ctx.clock.now()}))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.user_updated",
            entity_type=ENTITY_USER,
            entity_id=user_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        return User.model_validate(user_row(conn, user_id), from_attributes=True)


def delete_user(ctx: AppContext, user_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        user_row(conn, user_id)
        if conn.execute(queries.USER_OWNS, {"user_id": user_id}).scalar():
            raise Conflict(
                f"user {user_id} owns leads or activities: deactivate it (active: false) instead",
                code="user_in_use",
            )
        conn.execute(queries.DROP_TEAM_LEAD, {"user_id": user_id})
        conn.execute(queries.DELETE_USER, {"user_id": user_id})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.user_deleted",
            entity_type=ENTITY_USER,
            entity_id=user_id,
        )
