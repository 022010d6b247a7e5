"""``leadflow connectors ...``: connect a CRM or email platform, test it, backfill, watch its health and
replay what failed. A connector is named by its id or by its name."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from leadflow.connectors import config, manage
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound

connectors_app = typer.Typer(help="CRM and email-platform connectors.", no_args_is_help=True)


def _resolve(ctx: AppContext, ref: str) -> str:
    """A connector's id from its id or its (unique) name."""
    after: str | None = None
    named: list[str] = []
    while page := config.listing(ctx, after=after, limit=500):
        for row in page:
            if ref == row["id"]:
                return ref
            if ref == row["name"]:
                named.append(row["id"])
        after = page[-1]["id"]
    if len(named) == 1:
        return named[0]
    if named:
        raise Invalid(f"several connectors are named {ref!r}: use an id", code="ambiguous_connector")
    raise NotFound(f"no connector {ref!r}", code="connector_not_found")


def _json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, indent=2))


def _options(given: list[str]) -> dict[str, Any]:
    """``name=value`` pairs (a value that reads as JSON is taken as JSON: ``stage_id=3``,
    ``stages={"won": 7}``; else as text: ``object=Contact``)."""
    found: dict[str, Any] = {}
    for item in given:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise Invalid(f"an option is name=value, not {item!r}", code="invalid_option")
        try:
            found[name] = json.loads(text)
        except ValueError:
            found[name] = text
    return found


def _shown(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(options.items()))


@connectors_app.command("add")
def add(
    vendor: str = typer.Argument(..., help="hubspot"),
    name: str = typer.Option(..., "--name", help="how you will name it"),
    token: str = typer.Option(..., "--token", help="the vendor's access token (sealed, never shown again)"),
    host: str | None = typer.Option(None, "--host", help="the vendor's API address (default: its own)"),
    objects: str = typer.Option("contact", "--objects", help="contact,company,deal,activity"),
    direction: str = typer.Option("push", "--direction", help="push, or both to pull remote changes too"),
    preset: str | None = typer.Option(
        None, "--preset", help="a ready-made mapping (`leadflow connectors presets` lists them)"
    ),
    option: list[str] = typer.Option(
        [], "--option", help="a vendor option, name=value (e.g. pipeline_id=5); repeat for several"
    ),
) -> None:
    """Connect a vendor account; prints the connector's id."""
    with open_context() as ctx:
        require_schema(ctx)
        values = {
            "vendor": vendor,
            "name": name,
            "credentials": {"access_token": token},
            "host": host,
            "objects": [item.strip() for item in objects.split(",") if item.strip()],
            "direction": direction,
            "preset": preset,
            "options": _options(option),
        }
        view = config.create(ctx, values, actor=CLI_ACTOR)
        typer.echo(view["id"])


@connectors_app.command("presets")
def presets(vendor: str | None = typer.Argument(None, help="one vendor (default: all)")) -> None:
    """The ready-made mappings per vendor (what `add --preset` takes)."""
    table = Table()
    for column in ("vendor", "preset", "fields"):
        table.add_column(column)
    for row in config.presets(vendor):
        table.add_row(row["vendor"], row["name"], ", ".join(str(e["to"]) for e in row["mapping"]))
    console.print(table)


@connectors_app.command("list")
def listing() -> None:
    """The connectors."""
    with open_context() as ctx:
        require_schema(ctx)
        table = Table()
        table.add_column("id", no_wrap=True)
        for column in ("vendor", "name", "objects", "direction", "options", "active", "last error"):
            table.add_column(column)
        for row in config.listing(ctx, after=None, limit=500):
            table.add_row(
                row["id"],
                row["vendor"],
                row["name"],
                ",".join(row["objects"]),
                row["direction"],
                _shown(row["options"]),
                "yes" if row["active"] else "no",
                row["last_error"] or "",
            )
        console.print(table)


@connectors_app.command("options")
def set_options(
    ref: str = typer.Argument(..., help="the connector's id or name"),
    given: list[str] | None = typer.Argument(
        None, help="name=value pairs replacing the options (none: only print them)"
    ),
) -> None:
    """Print a connector's vendor options, or replace them (``pipeline_id=5 stage_id=3``)."""
    with open_context() as ctx:
        require_schema(ctx)
        connector_id = _resolve(ctx, ref)
        if given:
            view = config.update(ctx, connector_id, {"options": _options(given)}, actor=CLI_ACTOR)
        else:
            view = config.get(ctx, connector_id)
        _json(view["options"])


@connectors_app.command("test")
def check(ref: str = typer.Argument(..., help="the connector's id or name")) -> None:
    """One authenticated call to the vendor: prints ok, or the vendor's refusal."""
    with open_context() as ctx:
        require_schema(ctx)
        manage.test_connection(ctx, _resolve(ctx, ref))
        typer.echo("ok")


@connectors_app.command("sync")
def sync(ref: str, contact_id: str = typer.Argument(..., help="a contact id")) -> None:
    """Queue one contact now (the worker writes it)."""
    with open_context() as ctx:
        require_schema(ctx)
        _json(manage.sync_now(ctx, _resolve(ctx, ref), contact_id))


@connectors_app.command("backfill")
def backfill(ref: str, segment: str = typer.Option(..., "--segment", help="a segment id")) -> None:
    """Queue every member of a segment; progress: ``leadflow connectors health``."""
    with open_context() as ctx:
        require_schema(ctx)
        _json(manage.backfill(ctx, _resolve(ctx, ref), segment))


@connectors_app.command("health")
def health(ref: str) -> None:
    """Success rate, lag, backlog, dead letters and the last error (last hour)."""
    with open_context() as ctx:
        require_schema(ctx)
        _json(manage.health(ctx, _resolve(ctx, ref)))


@connectors_app.command("dead")
def dead(ref: str | None = typer.Argument(None, help="one connector (default: all)")) -> None:
    """The dead letters, with their reasons."""
    with open_context() as ctx:
        require_schema(ctx)
        _json(manage.dead_letters(ctx, _resolve(ctx, ref) if ref else None, 0, 500))


@connectors_app.command("replay")
def replay(
    ref: str | None = typer.Argument(None, help="one connector (default: all)"),
    record: int | None = typer.Option(None, "--record", help="one dead letter's id"),
    since: datetime | None = typer.Option(None, "--since", help="dead since (ISO 8601, UTC if no zone)"),
) -> None:
    """Queue dead letters again with fresh attempts; prints how many."""
    with open_context() as ctx:
        require_schema(ctx)
        moment = since if since is None or since.tzinfo else since.replace(tzinfo=ctx.clock.now().tzinfo)
        count = manage.replay(
            ctx, row_id=record, connector_id=_resolve(ctx, ref) if ref else None, since=moment
        )
        typer.echo(str(count))


@connectors_app.command("remove")
def remove(ref: str) -> None:
    """Disconnect (its waiting syncs, links and audit go)."""
    with open_context() as ctx:
        require_schema(ctx)
        config.delete(ctx, _resolve(ctx, ref), actor=CLI_ACTOR)
        console.print(f"removed connector {ref}")
