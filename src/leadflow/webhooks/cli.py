"""``leadflow webhooks ...``: what receivers need to verify leadflow's webhooks."""

from __future__ import annotations

import typer

from leadflow.kernel.commands import open_context, require_schema
from leadflow.webhooks import service

webhooks_app = typer.Typer(help="Outgoing webhooks.", no_args_is_help=True)


@webhooks_app.command("secret")
def webhooks_secret() -> None:
    """Print the ``whsec_`` secret receivers verify leadflow's webhook signatures with."""
    with open_context() as ctx:
        require_schema(ctx)
        typer.echo(service.signing_secret(ctx))
