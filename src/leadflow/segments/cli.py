"""``leadflow segments ...`` and ``leadflow import list SEGMENT FILE.csv``: contacts upserted by email,
then added to a static list."""

from __future__ import annotations

from pathlib import Path

import typer

from leadflow.contacts import service as contacts
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.segments import library, service

segments_app = typer.Typer(help="Segments and static lists.", no_args_is_help=True)
import_app = typer.Typer()
"""Merged into ``leadflow import`` beside the commands of other domains (``import contacts``)."""


@segments_app.command("install-library")
def segments_install_library() -> None:
    """Create the standard segments (active, churned, high-value, new, trial, paid, cart abandoners)."""
    with open_context() as ctx:
        require_schema(ctx)
        created = library.install(ctx, actor=CLI_ACTOR)
        for segment in created:
            console.print(f"created {segment.name} ({segment.id})")
        console.print(f"{len(created)} segment(s) created; the worker computes their members shortly")


@segments_app.command("refresh")
def segments_refresh(segment_id: str) -> None:
    """Recompute a dynamic segment now."""
    with open_context() as ctx:
        require_schema(ctx)
        result = service.refresh(ctx, segment_id)
        console.print(f"{result.members} member(s): {result.entered} entered, {result.exited} left")


@import_app.command("list")
def import_list(
    segment_id: str = typer.Argument(..., help="a static list"),
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    mapping: list[str] = typer.Option([], "--map", metavar="HEADER=FIELD", help=contacts.MAP_HELP),
) -> None:
    """Upsert contacts by email from a CSV file and add them to a static list."""
    with open_context() as ctx:
        require_schema(ctx)
        raise typer.Exit(run_list_import(ctx, segment_id, path, actor=CLI_ACTOR, mapping=mapping))


def run_list_import(
    ctx: AppContext, segment_id: str, path: Path, *, actor: str, mapping: list[str] | None = None
) -> int:
    """Each chunk's contacts join the list in the chunk's own transaction."""
    segment = service.get(ctx, segment_id)
    if segment.kind != "static":
        raise Invalid(
            "contacts are imported into static lists; dynamic segments follow their rules",
            code="dynamic_segment",
        )
    return contacts.run_import(ctx, path, console, actor=actor, mapping=mapping, list_id=segment.id)
