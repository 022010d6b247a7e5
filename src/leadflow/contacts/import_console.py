"""A CSV import run from a terminal: a progress bar while the chunks commit, then the report (counts,
warnings, rejected rows). Shared by ``leadflow import contacts`` and ``leadflow import list``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlalchemy.engine import Connection

from leadflow.contacts.import_run import ImportReport, import_contacts, scan
from leadflow.contacts.importer import parse_mapping, read_csv
from leadflow.kernel.context import AppContext

MAP_HELP = "read column HEADER as FIELD (email, first_name, company_domain, traits.NAME …; empty: skip it)"


def run_import(
    ctx: AppContext,
    path: Path,
    console: Console,
    *,
    actor: str,
    mapping: list[str] | None = None,
    list_id: str | None = None,
) -> int:
    """Import with a progress bar; exit status 1 when any row was rejected. Warnings (duplicate emails
    merged) are printed but do not fail the import. A bad mapping or file raises ``Invalid``."""
    rows = read_csv(path)
    found = scan(rows, parse_mapping(mapping or []))
    columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("contacts", total=found.total)

        def advance(_: Connection, report: ImportReport) -> None:
            bar.update(task, completed=report.rows)

        report = import_contacts(
            ctx, rows, actor=f"{actor}:import", list_id=list_id, scanned=found, on_chunk=advance
        )
    console.print(
        f"{report.rows} rows: {report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.merged} merged, {len(report.rejected)} rejected"
    )
    if list_id:
        console.print(f"{report.listed} contact(s) added to the list")
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow] line {warning.line}: {warning.message}")
    if report.rejected:
        table = Table("line", "reason", title="rejected rows")
        for item in report.rejected:
            table.add_row(str(item.line), item.reason)
        console.print(table)
        return 1
    return 0
