"""``leadflow import contacts FILE.csv``: contacts upserted by email, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer

from leadflow.contacts.import_console import MAP_HELP, run_import
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema

import_app = typer.Typer()
"""Merged into ``leadflow import`` beside the commands of other domains (``import list``)."""


@import_app.command("contacts")
def import_contacts(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    mapping: list[str] = typer.Option([], "--map", metavar="HEADER=FIELD", help=MAP_HELP),
) -> None:
    """Upsert contacts by email from a CSV file; rejected rows are reported with line and reason.
    The accepted columns are listed in docs/api.md (CSV import)."""
    with open_context() as ctx:
        require_schema(ctx)
        raise typer.Exit(run_import(ctx, path, console, actor=CLI_ACTOR, mapping=mapping))
