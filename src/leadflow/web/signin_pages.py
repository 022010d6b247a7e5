"""Signing in and out, and the set-password links (reset by email, invitation, first start).

Sign-in attempts are limited per client address and per account (token buckets,
:data:`leadflow.web.app.LOGIN_PER_IP` and ``LOGIN_PER_ACCOUNT``): past them the answer is a 429 page
saying when to try again, whether the password was right or not. A wrong email and a wrong password get
the same answer; so does a reset asked for an unknown address.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.crm import service as crm
from leadflow.kernel.errors import LeadflowError, RateLimited
from leadflow.web import mail, passwords, sessions
from leadflow.web.access import (
    PRE_COOKIE,
    Console,
    PageError,
    Viewer,
    change,
    check_pre_token,
    console,
    pre_token,
)
from leadflow.web.render import page

router = APIRouter()
HOME = "/app/"


def _with_pre_token(request: Request, response: Response, web: Console, token: str) -> Response:
    if request.cookies.get(PRE_COOKIE) != token:
        response.set_cookie(PRE_COOKIE, token, httponly=True, samesite="lax", secure=web.secure, path="/app")
    return response


def _anonymous(request: Request, name: str, status: int = 200, **values: object) -> Response:
    token = pre_token(request)
    response = page(request, name, None, status, pre_csrf=token, **values)
    return _with_pre_token(request, response, console(request), token)


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _limit(web: Console, request: Request, email: str | None) -> None:
    try:
        web.by_ip.check(_client(request))
        if email:
            web.by_account.check(email)
    except RateLimited as exc:
        raise PageError(
            429,
            "Too many attempts",
            f"Too many sign-in attempts. Try again in {exc.retry_after} seconds.",
            retry_after=exc.retry_after,
        ) from exc


def _user_with_email(web: Console, email: str) -> crm.User | None:
    try:
        with web.ctx.db.read() as conn:
            user_id = crm.find_user(conn, email)
    except LeadflowError:
        return None
    return crm.get_user(web.ctx, user_id)


def _safe_next(target: str | None) -> str:
    """Only a console path: never another site (``//evil``) after signing in."""
    if target and target.startswith("/app/") and not target.startswith("//") and "\\" not in target:
        return target
    return HOME


@router.get("/login")
def login_form(request: Request, next: str | None = None, done: str | None = None) -> Response:
    return _anonymous(request, "login.html", next=_safe_next(next), done=done, email="")


@router.post("/login", dependencies=[Depends(check_pre_token)])
async def login(request: Request, web: Console = Depends(console)) -> Response:
    form = await request.form()
    email, password = str(form.get("email") or "").strip().lower(), str(form.get("password") or "")
    target = _safe_next(str(form.get("next") or ""))
    _limit(web, request, email)
    user = _user_with_email(web, email) if email else None
    with web.ctx.db.read() as conn:
        stored = passwords.stored_hash(conn, user.id) if user else None
    if user is None or not passwords.matches(stored, password):
        error = "Wrong email or password."
        return _anonymous(request, "login.html", 401, next=target, email=email, error=error, done=None)
    agent = request.headers.get("user-agent")
    token = sessions.open_session(web.ctx, user.id, agent, actor=f"user:{user.email}")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        sessions.COOKIE,
        sessions.cookie_value(web.secret, token),
        max_age=int(sessions.ABSOLUTE.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=web.secure,
        path="/app",
    )
    return response


@router.post("/logout")
def logout(
    viewer: Viewer = Depends(change("account", own=True)),
    web: Console = Depends(console),
) -> Response:
    sessions.close(web.ctx, viewer.session, actor=viewer.actor)
    response = RedirectResponse("/app/login?done=signed_out", status_code=303)
    response.delete_cookie(sessions.COOKIE, path="/app")
    return response


@router.get("/reset")
def reset_form(request: Request) -> Response:
    return _anonymous(request, "reset_request.html", sent=False)


@router.post("/reset", dependencies=[Depends(check_pre_token)])
async def reset_request(request: Request, web: Console = Depends(console)) -> Response:
    email = str((await request.form()).get("email") or "").strip().lower()
    _limit(web, request, email)
    user = _user_with_email(web, email) if email else None
    if user is not None:
        with web.ctx.db.read() as conn:
            stored = passwords.stored_hash(conn, user.id)
        token = passwords.link_token(web.ctx, user.id, stored, passwords.RESET_FOR)
        url = f"{web.ctx.settings.public_url}/app/reset/{token}"
        until = _until(web.ctx.clock.now() + passwords.RESET_FOR)
        mail.send_link(web.ctx, to=user.email, name=user.name, url=url, until=until, invitation=False)
    return _anonymous(request, "reset_request.html", sent=True)


def _until(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _link_user(web: Console, token: str) -> crm.User:
    try:
        with web.ctx.db.read() as conn:
            user_id = passwords.link_user(web.ctx, conn, token)
    except LeadflowError as exc:
        raise PageError(400, "Link not valid", str(exc)) from exc
    user = crm.get_user(web.ctx, user_id)
    if not user.active:
        raise PageError(400, "Link not valid", "This account is deactivated.")
    return user


@router.get("/reset/{token}")
def new_password_form(request: Request, token: str, web: Console = Depends(console)) -> Response:
    user = _link_user(web, token)
    return _anonymous(request, "new_password.html", token=token, email=user.email)


@router.post("/reset/{token}", dependencies=[Depends(check_pre_token)])
async def new_password(request: Request, token: str, web: Console = Depends(console)) -> Response:
    user = _link_user(web, token)
    form = await request.form()
    password, again = str(form.get("password") or ""), str(form.get("again") or "")
    error = None
    if password != again:
        error = "The two passwords differ."
    else:
        try:
            passwords.set_password(web.ctx, user.id, password, actor=f"user:{user.email}")
        except LeadflowError as exc:
            error = str(exc)
    if error:
        return _anonymous(request, "new_password.html", 422, token=token, email=user.email, error=error)
    return RedirectResponse("/app/login?done=password_set", status_code=303)
