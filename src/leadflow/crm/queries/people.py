"""Teams and users: the business's people, the owners leads are assigned to."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    crm_activities,
    crm_leads,
    crm_teams,
    crm_users,
)
from leadflow.kernel.db import Sample

_t, _u, _l, _a = crm_teams.c, crm_users.c, crm_leads.c, crm_activities.c

INSERT_TEAM = crm_teams.insert()
TEAM = sa.select(crm_teams).where(_t.id == sa.bindparam("team_id"))
TEAM_NAMED = sa.select(_t.id).where(_t.name == sa.bindparam("name"))
DELETE_TEAM = crm_teams.delete().where(_t.id == sa.bindparam("team_id"))
#: A deleted team's members stay, without a team.
LEAVE_TEAM = crm_users.update().where(_u.team_id == sa.bindparam("team")).values(team_id=None)
INSERT_USER = crm_users.insert()
USER = sa.select(crm_users).where(_u.id == sa.bindparam("user_id"))
USER_WITH_EMAIL = sa.select(_u.id).where(_u.email == sa.bindparam("email"))
DELETE_USER = crm_users.delete().where(_u.id == sa.bindparam("user_id"))
#: A deleted user no longer leads a team.
DROP_TEAM_LEAD = (
    crm_teams.update().where(_t.lead_user_id == sa.bindparam("user_id")).values(lead_user_id=None)
)
#: Whether a user owns a lead or an activity (then it is deactivated, not deleted).
USER_OWNS = sa.select(
    sa.or_(
        sa.exists().where(_l.owner_id == sa.bindparam("user_id")),
        sa.exists().where(_a.owner_id == sa.bindparam("user_id")),
    )
)


def teams_page(*, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(crm_teams).order_by(_t.id).limit(limit)
    return query if after is None else query.where(_t.id > after)


def change_team(team_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_teams.update().where(_t.id == team_id).values(values)


def users_page(*, after: str | None, team_id: str | None, active: bool | None, limit: int) -> sa.Select[Any]:
    query = sa.select(crm_users).order_by(_u.id).limit(limit)
    if after is not None:
        query = query.where(_u.id > after)
    if team_id is not None:
        query = query.where(_u.team_id == team_id)
    if active is not None:
        query = query.where(_u.active.is_(active))
    return query


def change_user(user_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_users.update().where(_u.id == user_id).values(values)


def users_named(refs: Sequence[str]) -> sa.Select[Any]:
    """Users by id or by email (stored lower-cased)."""
    refs = list(refs)
    return sa.select(_u.id, _u.email, _u.active).where(
        sa.or_(_u.id.in_(refs), _u.email.in_([r.strip().lower() for r in refs]))
    )


def users_by_ids(user_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(crm_users).where(_u.id.in_(list(user_ids)))


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: teams_page(after="t", limit=10),
    lambda: change_team("t", {"name": "n"}),
    lambda: users_page(after="u", team_id="t", active=True, limit=10),
    lambda: change_user("u", {"name": "n"}),
    lambda: users_named(["u1", "a@example.com"]),
    lambda: users_by_ids(["u1"]),
]
