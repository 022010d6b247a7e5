"""``leadflow scoring ...``: install a shipped rule set, recompute every score."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema
from leadflow.scoring import service as scoring

scoring_app = typer.Typer(help="Lead scoring.", no_args_is_help=True)


@scoring_app.command("install-defaults")
def scoring_install_defaults(rule_set: str = typer.Option(..., "--set", help="course or b2b")) -> None:
    """Install a shipped rule set and its score bands."""
    with open_context() as ctx:
        require_schema(ctx)
        created = scoring.install_defaults(ctx, rule_set, actor=CLI_ACTOR)
        for rule in created:
            console.print(f"created rule {rule.name} ({rule.points:+g})")
        console.print(
            f"{len(created)} rule(s) installed; run `leadflow scoring recompute` to score history now"
        )


@scoring_app.command("recompute")
def scoring_recompute() -> None:
    """Recompute every contact's score from the event log (set-based), with a progress bar."""
    with open_context() as ctx:
        require_schema(ctx)
        steps = sum(1 for rule in scoring.list_rules(ctx) if rule.active) + 1
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as bar:
            task = bar.add_task("recomputing scores", total=steps)

            def step(description: str) -> None:
                bar.update(task, description=description)
                bar.advance(task)

            result = scoring.recompute(ctx, progress=step)
            bar.update(task, completed=steps, description="done")
        console.print(
            f"{result.rules} rule(s), {result.contacts} contact(s) scored, "
            f"{result.band_changes} band change(s)"
        )
