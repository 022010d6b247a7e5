"""``/api/v1/crm/users`` and ``/api/v1/crm/teams``: read with ``read``, change with ``admin``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from leadflow.crm import people
from leadflow.crm.schemas import Team, TeamCreate, TeamFields, User, UserCreate, UserFields
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])


@router.post("/users", response_model=User, status_code=201, summary="Add a CRM user")
def create_user(
    body: UserCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> User:
    return people.create_user(ctx, body, actor=principal.actor)


@router.get("/users", response_model=Page[User], summary="List CRM users")
def list_users(
    team_id: str | None = Query(None, max_length=26),
    active: bool | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[User]:
    after = pagination.text_at(cursor, "after")
    found = people.list_users(ctx, after=after, team_id=team_id, active=active, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda u: {"after": u.id})
    return Page[User](data=items, next_cursor=next_cursor)


@router.get("/users/{user_id}", response_model=User, summary="Get a CRM user")
def get_user(
    user_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> User:
    return people.get_user(ctx, user_id)


@router.patch("/users/{user_id}", response_model=User, summary="Change a CRM user")
def update_user(
    user_id: str,
    body: UserFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> User:
    return people.update_user(ctx, user_id, body, actor=principal.actor)


@router.delete(
    "/users/{user_id}", status_code=204, response_class=Response, summary="Delete a CRM user who owns nothing"
)
def delete_user(
    user_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Response:
    people.delete_user(ctx, user_id, actor=principal.actor)
    return Response(status_code=204)


@router.post("/teams", response_model=Team, status_code=201, summary="Add a team")
def create_team(
    body: TeamCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Team:
    return people.create_team(ctx, body, actor=principal.actor)


@router.get("/teams", response_model=Page[Team], summary="List teams")
def list_teams(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Team]:
    found = people.list_teams(ctx, after=pagination.text_at(cursor, "after"), limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda t: {"after": t.id})
    return Page[Team](data=items, next_cursor=next_cursor)


@router.get("/teams/{team_id}", response_model=Team, summary="Get a team")
def get_team(
    team_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Team:
    return people.get_team(ctx, team_id)


@router.patch("/teams/{team_id}", response_model=Team, summary="Rename a team or change its lead")
def update_team(
    team_id: str,
    body: TeamFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Team:
    return people.update_team(ctx, team_id, body, actor=principal.actor)


@router.delete(
    "/teams/{team_id}", status_code=204, response_class=Response, summary="Delete a team (its members stay)"
)
def delete_team(
    team_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Response:
    people.delete_team(ctx, team_id, actor=principal.actor)
    return Response(status_code=204)
