"""``leadflow import contacts FILE.csv``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadflow.contacts.importer import ImportReport, import_contacts, read_csv
from leadflow.kernel.context import AppContext


def _count_records(path: Path) -> int:
    return sum(1 for _ in read_csv(path))


def run_import(
    ctx: AppContext,
    path: Path,
    console: Console,
    *,
    actor: str,
    then: Callable[[ImportReport], str] | None = None,
) -> int:
    """Import with a progress bar; exit status 1 when any row was rejected. ``then`` runs on the report
    (adding the contacts to a list, say) and returns a line to print."""
    total = _count_records(path)
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("contacts", total=total)
        report = import_contacts(
            ctx, read_csv(path), actor=f"{actor}:import", progress=lambda n: bar.advance(task, n)
        )
        bar.update(task, completed=total)
    console.print(
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.rejected)} rejected"
    )
    if then is not None:
        console.print(then(report))
    if report.rejected:
        table = Table("line", "reason", title="rejected rows")
        for item in report.rejected:
            table.add_row(str(item.line), item.reason)
        console.print(table)
        return 1
    return 0
