"""``leadflow webhooks ...``: what receivers need to verify leadflow's webhooks."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.table import Table

from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema
from leadflow.webhooks import endpoints, service

webhooks_app = typer.Typer(help="Outgoing webhooks.", no_args_is_help=True)


@webhooks_app.command("secret")
def webhooks_secret() -> None:
    """Print the ``whsec_`` secret receivers verify leadflow's webhook signatures with."""
    with open_context() as ctx:
        require_schema(ctx)
        typer.echo(service.signing_secret(ctx))


endpoints_app = typer.Typer(help="Registered webhook endpoints.", no_args_is_help=True)
webhooks_app.add_typer(endpoints_app, name="endpoints")


@endpoints_app.command("list")
def endpoints_list() -> None:
    """List the endpoints."""
    with open_context() as ctx:
        require_schema(ctx)
        table = Table()
        table.add_column("id", no_wrap=True)  # an id is copied whole
        for name in ("url", "event types", "active", "rate/s", "description"):
            table.add_column(name)
        after: str | None = None
        while page := endpoints.listing(ctx, after=after, limit=500):
            for row in page:
                rate = "" if row["rate_limit"] is None else f"{row['rate_limit']:g}"
                active = "yes" if row["active"] else f"no ({row['disabled_reason'] or 'off'})"
                table.add_row(
                    row["id"], row["url"], ",".join(row["event_types"]), active, rate, row["description"]
                )
            after = page[-1]["id"]
        console.print(table)


@endpoints_app.command("add")
def endpoints_add(
    url: str = typer.Argument(..., help="the receiver's http(s) address"),
    events: str = typer.Option("*", "--events", help="comma-separated catalogue types, or *"),
    description: str = typer.Option("", "--description"),
    rate_limit: float | None = typer.Option(None, "--rate-limit", help="deliveries per second at most"),
) -> None:
    """Register an endpoint and print its secret (shown only now)."""
    types = [name.strip() for name in events.split(",") if name.strip()]
    with open_context() as ctx:
        require_schema(ctx)
        view, secret = endpoints.create(
            ctx, url=url, event_types=types, description=description, rate_limit=rate_limit, actor=CLI_ACTOR
        )
        console.print(f"created endpoint {view['id']} ({', '.join(view['event_types'])})")
        typer.echo(secret)


@endpoints_app.command("remove")
def endpoints_remove(endpoint_id: str) -> None:
    """Delete an endpoint (its waiting deliveries are cancelled)."""
    with open_context() as ctx:
        require_schema(ctx)
        endpoints.delete(ctx, endpoint_id, actor=CLI_ACTOR)
        console.print(f"removed endpoint {endpoint_id}")


@endpoints_app.command("rotate")
def endpoints_rotate(
    endpoint_id: str,
    grace: float | None = typer.Option(None, "--grace", help="seconds the old secret still signs"),
) -> None:
    """Give the endpoint a new secret and print it; the old one signs too during the grace period."""
    with open_context() as ctx:
        require_schema(ctx)
        span = None if grace is None else timedelta(seconds=grace)
        view, secret = endpoints.rotate(ctx, endpoint_id, grace=span, actor=CLI_ACTOR)
        console.print(f"rotated; the old secret signs until {view['rotation_ends_at']}")
        typer.echo(secret)
