"""Mounting the console on the application: ``/app`` (pages), ``/app/static`` (its one stylesheet),
the page errors, and the navigation.

A later page is a router added to :data:`ROUTERS` (its handlers depend on :func:`access.page` or
:func:`access.change` with their area) and, when it belongs in the menu, an entry of :data:`NAV`.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from leadflow.kernel.context import AppContext
from leadflow.kernel.ratelimit import RateLimiter
from leadflow.web import (
    access,
    account_pages,
    admin_pages,
    contact_detail,
    contact_pages,
    crm_board,
    crm_pages,
    dashboard,
    email_pages,
    email_reports,
    integration_pages,
    journey_editor,
    journey_pages,
    report_alerts,
    report_pages,
    segment_members,
    segment_pages,
    signin_pages,
)
from leadflow.web.access import Console, PageError, SignInNeeded
from leadflow.web.render import protect

PREFIX = "/app"
ROUTERS = (
    signin_pages.router,
    account_pages.router,
    admin_pages.router,
    crm_pages.router,
    crm_board.router,
    dashboard.router,
    segment_pages.router,
    segment_members.router,
    contact_pages.router,
    contact_detail.router,
    email_pages.router,
    email_reports.router,
    journey_editor.router,
    journey_pages.router,
    integration_pages.router,
    report_pages.router,
    report_alerts.router,
)
# (area, label, path): shown to the roles allowed in the area (leadflow.web.access.AREAS)
NAV = [
    ("dashboard", "Dashboard", "/app/"),
    ("contacts", "Contacts", "/app/contacts"),
    ("segments", "Segments", "/app/segments"),
    ("email", "Email", "/app/email"),
    ("crm", "Leads", "/app/crm/leads"),
    ("crm", "Pipeline", "/app/crm/board"),
    ("journeys", "Journeys", "/app/journeys"),
    ("integrations", "Integrations", "/app/integrations"),
    ("reports", "Reports", "/app/reports"),
    ("users", "Users", "/app/users"),
    ("account", "My account", "/app/account"),
]
LOGIN_PER_IP = (10 / 60, 10)  # rate per second, burst: 10 attempts, then one every 6 s
LOGIN_PER_ACCOUNT = (5 / 300, 5)  # 5 attempts, then one a minute


def install(app: FastAPI, ctx: AppContext) -> None:
    base = files("leadflow.web")
    templates = Jinja2Templates(directory=str(base / "templates"))
    app.state.web = Console(
        ctx=ctx,
        templates=templates,
        by_ip=RateLimiter(LOGIN_PER_IP[0], burst=LOGIN_PER_IP[1], clock=ctx.clock),
        by_account=RateLimiter(LOGIN_PER_ACCOUNT[0], burst=LOGIN_PER_ACCOUNT[1], clock=ctx.clock),
        secure=ctx.settings.public_url.startswith("https://"),
        nav=NAV,
    )
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(base / "static")), name="web-static")
    for router in ROUTERS:
        app.include_router(
            router, prefix=PREFIX, include_in_schema=False, dependencies=[Depends(access.clean_input)]
        )
    app.add_exception_handler(PageError, _page_error)  # type: ignore[arg-type]
    app.add_exception_handler(SignInNeeded, _sign_in)  # type: ignore[arg-type]


async def _page_error(request: Request, exc: PageError) -> Response:
    web: Console = request.app.state.web
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return protect(
        web.templates.TemplateResponse(
            request,
            "error.html",
            {"title": exc.title, "message": exc.message, "viewer": None, "nav": []},
            status_code=exc.status,
            headers=headers,
        )
    )


async def _sign_in(request: Request, exc: SignInNeeded) -> Response:
    return RedirectResponse(f"{PREFIX}/login?next={exc.back}", status_code=303)
