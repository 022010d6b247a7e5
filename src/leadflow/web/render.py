"""Rendering a console page: the layout's variables (the viewer, the menu for their role, the CSRF
token) added to the page's own."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from leadflow.web.access import Console, Viewer, console

# Only this server: no inline script or style, no outside asset; forms post here only; no framing.
POLICY = "default-src 'self'; form-action 'self'; frame-ancestors 'none'"


def page(request: Request, name: str, viewer: Viewer | None, status: int = 200, **values: Any) -> Response:
    web: Console = console(request)
    nav = [(label, path) for area, label, path in web.nav if viewer is not None and viewer.may(area)]
    context = {"viewer": viewer, "nav": nav, "csrf": viewer.csrf if viewer else None, **values}
    response = web.templates.TemplateResponse(request, name, context, status_code=status)
    return protect(response)


def protect(response: Response) -> Response:
    """Never cached (pages show personal data and CSRF tokens); only this server's assets."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = POLICY
    return response
