"""``leadflow journeys ...``: install the ready-made journeys, simulate a definition file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from leadflow.kernel.errors import LeadflowError

journeys_app = typer.Typer(help="Journeys: ready-made templates and the simulator.", no_args_is_help=True)
console = Console()
CLI_ACTOR = "cli"


def load_file(path: Path) -> Any:
    """A JSON or YAML file (a shipped template file is unwrapped to its definition)."""
    text = path.read_text("utf-8")
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict) and "definition" in data and "steps" not in data:
        return {
            "name": data.get("name", path.stem),
            "description": data.get("description"),
            **data["definition"],
        }
    return data


@journeys_app.command("install-templates")
def install_templates(
    names: list[str] = typer.Argument(None, help="which (default: all eight)"),
    publish: bool = typer.Option(False, "--publish", help="publish them at once (default: drafts)"),
) -> None:
    """Install the ready-made journeys with their email templates, segments and topics (idempotent)."""
    from leadflow.cli import _context, _require_schema
    from leadflow.journeys import installer

    with _context() as ctx:
        _require_schema(ctx)
        try:
            found = installer.install_all(ctx, actor=CLI_ACTOR, names=names or None, publish=publish)
        except LeadflowError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(2) from None
        for item in found:
            state = "installed" if item.created else "already there"
            console.print(f"{item.key}: {state}, {item.status} ({item.journey_id})")


@journeys_app.command("simulate")
def simulate(
    file: Path = typer.Argument(..., exists=True, readable=True, help="a journey definition (JSON or YAML)"),
    script: Path | None = typer.Option(
        None, "--script", exists=True, help="contact and events (JSON or YAML)"
    ),
    horizon: str | None = typer.Option(None, help="how far to run, like 90d"),
    as_json: bool = typer.Option(False, "--json", help="print the whole timeline as JSON"),
) -> None:
    """Run a journey for one made-up contact on a virtual clock; nothing is saved or sent."""
    from leadflow.cli import _context, _require_schema
    from leadflow.journeys import simulator

    request_data: dict[str, Any] = load_file(script) if script else {}
    if horizon:
        request_data["horizon"] = horizon
    with _context() as ctx:
        _require_schema(ctx)
        try:
            result = simulator.simulate(
                ctx, load_file(file), simulator.SimulationRequest.model_validate(request_data)
            )
        except LeadflowError as exc:
            console.print(f"[red]{exc.message}[/red]")
            raise typer.Exit(2) from None
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table("after", "step", "type", "branch", "email subject")
    for moment in result.timeline:
        table.add_row(
            str(moment.at - result.started_at),
            moment.step,
            moment.type,
            moment.branch or "",
            moment.email.subject if moment.email else (moment.error or ""),
        )
    console.print(table)
    console.print(f"run: {result.run_status} {result.exit_reason or ''}")
