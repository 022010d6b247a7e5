"""My account: change one's password, see one's sessions, sign out everywhere."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.kernel.errors import LeadflowError
from leadflow.web import passwords, sessions
from leadflow.web.access import Console, Viewer, change, console, page
from leadflow.web.render import page as render

router = APIRouter()


def _account(request: Request, viewer: Viewer, web: Console, status: int = 200, **values: object) -> Response:
    found = sessions.of_user(web.ctx, viewer.user.id)
    return render(
        request, "account.html", viewer, status, sessions=found, current=viewer.session.id_hash, **values
    )


@router.get("/account")
def account(
    request: Request,
    done: str | None = None,
    viewer: Viewer = Depends(page("account")),
    web: Console = Depends(console),
) -> Response:
    return _account(request, viewer, web, done=done)


@router.post("/account/password")
async def change_password(
    request: Request,
    viewer: Viewer = Depends(change("account", own=True)),
    web: Console = Depends(console),
) -> Response:
    form = await request.form()
    current, new, again = (str(form.get(k) or "") for k in ("current", "password", "again"))
    with web.ctx.db.read() as conn:
        stored = passwords.stored_hash(conn, viewer.user.id)
    error = None
    if not passwords.matches(stored, current):
        error = "Your current password is not right."
    elif new != again:
        error = "The two new passwords differ."
    else:
        try:
            passwords.set_password(web.ctx, viewer.user.id, new, actor=viewer.actor)
        except LeadflowError as exc:
            error = str(exc)
    if error:
        return _account(request, viewer, web, 422, error=error)
    # every session ended with the change, this one too: sign in with the new password
    response = RedirectResponse("/app/login?done=password_set", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/app")
    return response


@router.post("/account/sign-out-everywhere")
def sign_out_everywhere(
    viewer: Viewer = Depends(change("account", own=True)),
    web: Console = Depends(console),
) -> Response:
    sessions.close_all(web.ctx, viewer.user.id, actor=viewer.actor)
    response = RedirectResponse("/app/login?done=signed_out", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/app")
    return response
