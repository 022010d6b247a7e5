"""``leadflow import list SEGMENT FILE.csv``: contacts upserted by email, then added to a static list."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from leadflow.contacts.cli import run_import
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.segments import service


def import_list(
    ctx: AppContext,
    segment_id: str,
    path: Path,
    console: Console,
    *,
    actor: str,
    mapping: list[str] | None = None,
) -> int:
    """Each chunk's contacts join the list in the chunk's own transaction."""
    segment = service.get(ctx, segment_id)
    if segment.kind != "static":
        raise Invalid(
            "contacts are imported into static lists; dynamic segments follow their rules",
            code="dynamic_segment",
        )
    return run_import(ctx, path, console, actor=actor, mapping=mapping, list_id=segment.id)
