"""``leadflow import list SEGMENT FILE.csv``: contacts upserted by email, then added to a static list."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from leadflow.contacts.cli import run_import
from leadflow.contacts.importer import ImportReport
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunked
from leadflow.kernel.errors import Invalid
from leadflow.segments import service


def import_list(ctx: AppContext, segment_id: str, path: Path, console: Console, *, actor: str) -> int:
    if service.get(ctx, segment_id).kind != "static":
        raise Invalid(
            "contacts are imported into static lists; dynamic segments follow their rules",
            code="dynamic_segment",
        )

    def add(report: ImportReport) -> str:
        added = 0
        for chunk in chunked(sorted(set(report.contact_ids)), 1000):
            added += service.change_static(ctx, segment_id, chunk, [], actor=actor).entered
        return f"{added} contact(s) added to the list"

    return run_import(ctx, path, console, actor=actor, then=add)
