"""``leadflow analytics ...``: the KPIs of a period, rolling up now, rebuilding the rollups."""

from __future__ import annotations

from datetime import datetime

import typer

from leadflow.analytics import service as analytics
from leadflow.kernel.commands import console, open_context, require_schema

analytics_app = typer.Typer(help="Analytics: KPIs and their rollups.", no_args_is_help=True)

_DAY = ["%Y-%m-%d"]


@analytics_app.command("kpis")
def analytics_kpis(
    start: datetime | None = typer.Option(None, "--from", formats=_DAY, help="first UTC day"),
    end: datetime | None = typer.Option(None, "--to", formats=_DAY, help="last UTC day (inclusive)"),
    csv: bool = typer.Option(False, "--csv", help="print a CSV report"),
) -> None:
    """The KPIs of a period against the previous one (rolls up the newest events first)."""
    with open_context() as ctx:
        require_schema(ctx)
        analytics.maintain(ctx)
        report = analytics.kpis(ctx, start.date() if start else None, end.date() if end else None)
        if csv:
            typer.echo(analytics.to_csv(report), nl=False)
            return
        console.print(
            f"{report.period.start} … {report.period.end} "
            f"(previous {report.previous.start} … {report.previous.end})"
        )
        for name, figure in report.figures.items():
            change = "" if figure.change is None else f" ({figure.change:+.1%})"
            console.print(f"{name:22} {figure.current:>10g} {figure.previous:>10g}{change}")


@analytics_app.command("rollup")
def analytics_rollup() -> None:
    """Roll up the events received since the last run (the worker does this every minute)."""
    with open_context() as ctx:
        require_schema(ctx)
        progress = analytics.maintain(ctx, max_batches=1 << 30)
        console.print(f"{progress.batches} batch(es), rolled up to event {progress.mark}")


@analytics_app.command("rebuild")
def analytics_rebuild(
    start: datetime | None = typer.Option(
        None, "--from", formats=_DAY, help="recompute the days from this one"
    ),
) -> None:
    """Recompute the rollups from the raw events (all of them, or the days from --from on)."""
    with open_context() as ctx:
        require_schema(ctx)
        progress = analytics.rebuild(ctx, start=start.date() if start else None)
        console.print(
            f"rebuilt from {start.date() if start else 'the first event'}: "
            f"{progress.batches} batch(es), up to event {progress.mark}"
        )
