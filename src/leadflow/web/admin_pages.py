"""The users page (admin); the dashboard is :mod:`leadflow.web.dashboard`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.crm import service as crm
from leadflow.kernel.errors import LeadflowError
from leadflow.web import mail, passwords
from leadflow.web.access import ROLES, Console, PageError, Viewer, change, console, page
from leadflow.web.render import page as render

router = APIRouter()


def _users(request: Request, viewer: Viewer, web: Console, status: int = 200, **values: object) -> Response:
    users = crm.list_users(web.ctx, after=None, limit=500)
    with web.ctx.db.read() as conn:
        holders = passwords.with_password(conn)
    return render(request, "users.html", viewer, status, users=users, holders=holders, roles=ROLES, **values)


@router.get("/users")
def users(
    request: Request,
    done: str | None = None,
    viewer: Viewer = Depends(page("users")),
    web: Console = Depends(console),
) -> Response:
    return _users(request, viewer, web, done=done)


@router.post("/users")
async def invite(
    request: Request,
    viewer: Viewer = Depends(change("users")),
    web: Console = Depends(console),
) -> Response:
    """Create a user and email them a link to set their password (valid 3 days, once)."""
    form = await request.form()
    name, email, role = (str(form.get(k) or "").strip() for k in ("name", "email", "role"))
    try:
        data = crm.UserCreate.model_validate({"name": name, "email": email, "role": role})
        user = crm.create_user(web.ctx, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _users(request, viewer, web, 422, error=str(exc))
    token = passwords.link_token(web.ctx, user.id, None, passwords.INVITE_FOR)
    url = f"{web.ctx.settings.public_url}/app/reset/{token}"
    until = (web.ctx.clock.now() + passwords.INVITE_FOR).strftime("%Y-%m-%d %H:%M UTC")
    mail.send_link(web.ctx, to=user.email, name=user.name, url=url, until=until, invitation=True)
    return RedirectResponse("/app/users?done=invited", status_code=303)


@router.post("/users/{user_id}")
async def update(
    request: Request,
    user_id: str,
    viewer: Viewer = Depends(change("users")),
    web: Console = Depends(console),
) -> Response:
    """Change a user's role, or deactivate / reactivate them (``action``: role, deactivate, activate)."""
    form = await request.form()
    action = str(form.get("action") or "")
    if user_id == viewer.user.id:
        raise PageError(409, "Not on yourself", "Ask another admin to change your own role or access.")
    if action == "role":
        values: dict[str, object] = {"role": str(form.get("role") or "")}
    elif action in ("deactivate", "activate"):
        values = {"active": action == "activate"}
    else:
        raise PageError(400, "Unknown action", f"no action {action!r}")
    try:
        crm.update_user(web.ctx, user_id, crm.UserFields.model_validate(values), actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _users(request, viewer, web, 422, error=str(exc))
    return RedirectResponse("/app/users?done=updated", status_code=303)
