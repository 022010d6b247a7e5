"""What the composition root (the command line, the app factory) uses of the console."""

from __future__ import annotations

from email.utils import parseaddr

from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.web import passwords
from leadflow.web.app import install as install
from leadflow.web.cli import console_app as console_app
from leadflow.web.passwords import set_password as set_password

ACTOR = "system:first-start"
PREFIX = "/app"

__all__ = ["admin_link", "console_app", "first_start_banner", "install", "set_password"]


def admin_link(ctx: AppContext) -> tuple[str, str] | None:
    """While no active admin has a password: a one-time link to set one (an admin is created, named
    after the sender's domain, when there is none), and the admin's email. None otherwise."""
    admins = [u for u in crm.list_users(ctx, after=None, active=True, limit=500) if u.role == "admin"]
    with ctx.db.read() as conn:
        holders = passwords.with_password(conn)
    if any(u.id in holders for u in admins):
        return None
    if not admins:
        domain = parseaddr(ctx.settings.email_from)[1].rpartition("@")[2]
        domain = domain if "." in domain else "example.com"  # the default sender is at localhost
        data = crm.UserCreate(name="Administrator", email=f"admin@{domain}", role="admin", capacity=0)
        admins = [crm.create_user(ctx, data, actor=ACTOR)]
    admin = admins[0]
    token = passwords.link_token(ctx, admin.id, None, passwords.INVITE_FOR)
    return f"{ctx.settings.public_url}{PREFIX}/reset/{token}", admin.email


def first_start_banner(ctx: AppContext) -> str | None:
    found = admin_link(ctx)
    if found is None:
        return None
    url, email = found
    return "\n".join(
        [
            "",
            f"leadflow console: no admin can sign in yet. Set the password of {email}",
            "(the link works once, for 3 days):",
            f"  {url}",
            "",
        ]
    )
