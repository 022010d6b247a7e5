"""``leadflow keys ...``: create, list and revoke API keys."""

from __future__ import annotations

import typer
from rich.table import Table

from leadflow.auth import service as keys
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="what the key is for"),
    scopes: str = typer.Option("ingest", help="comma-separated: ingest, read, write, admin"),
) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    with open_context() as ctx:
        require_schema(ctx)
        with ctx.db.write() as conn:
            view, plaintext = keys.create_key(
                conn, ctx.clock, name=name, scopes=scopes.split(","), actor=CLI_ACTOR
            )
        console.print(f"created key {view.id} ({', '.join(view.scopes)})")
        print(plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    with open_context() as ctx:
        with ctx.db.read() as conn:
            found = keys.list_keys(conn)
        table = Table("id", "name", "prefix", "scopes", "created", "last used", "revoked")
        for key in found:
            table.add_row(
                key.id,
                key.name,
                key.prefix,
                ",".join(key.scopes),
                key.created_at.isoformat(timespec="seconds"),
                key.last_used_at.isoformat(timespec="minutes") if key.last_used_at else "never",
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
        console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key."""
    with open_context() as ctx:
        with ctx.db.write() as conn:
            keys.revoke_key(conn, ctx.clock, key_id, actor=CLI_ACTOR)
        console.print(f"revoked {key_id}")
