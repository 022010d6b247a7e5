"""``leadflow console ...``: getting into the console when email is not set up or no admin can sign in."""

from __future__ import annotations

import typer

from leadflow.crm import service as crm
from leadflow.kernel.commands import console, open_context, require_schema
from leadflow.kernel.errors import LeadflowError
from leadflow.web import passwords

console_app = typer.Typer(help="The web console (/app).", no_args_is_help=True)


@console_app.command("link")
def console_link(email: str = typer.Argument(..., help="the user's email")) -> None:
    """Print a link that sets the user's password (works once, for 3 days; signs them out everywhere)."""
    with open_context() as ctx:
        require_schema(ctx)
        try:
            with ctx.db.read() as conn:
                user_id = crm.find_user(conn, email.strip().lower())
                stored = passwords.stored_hash(conn, user_id)
        except LeadflowError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(1) from exc
        token = passwords.link_token(ctx, user_id, stored, passwords.INVITE_FOR)
        typer.echo(f"{ctx.settings.public_url}/app/reset/{token}")
