"""``leadflow journeys ...``: install the ready-made journeys, simulate a definition file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.table import Table

from leadflow.journeys import installer, simulator
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema, yaml_problem
from leadflow.kernel.errors import Invalid

journeys_app = typer.Typer(help="Journeys: ready-made templates and the simulator.", no_args_is_help=True)


def read(path: Path) -> Any:
    """A JSON or YAML file; content that does not parse is a one-line :class:`Invalid` naming the file."""
    text = path.read_text("utf-8")
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as error:
        raise Invalid(f"{path}: not valid JSON: {error}", code="invalid_file") from None
    except yaml.YAMLError as error:
        raise Invalid(f"{path}: {yaml_problem(error)}", code="invalid_file") from None


def load_file(path: Path) -> Any:
    """A JSON or YAML file (a shipped template file is unwrapped to its definition)."""
    data = read(path)
    if isinstance(data, dict) and "definition" in data and "steps" not in data:
        return {
            "name": data.get("name", path.stem),
            "description": data.get("description"),
            **data["definition"],
        }
    return data


@journeys_app.command("install-templates")
def install_templates(
    names: list[str] = typer.Argument(None, help="which (default: all of them)"),
    publish: bool = typer.Option(False, "--publish", help="publish them at once (default: drafts)"),
) -> None:
    """Install the ready-made journeys with their email templates, segments and topics (idempotent)."""
    with open_context() as ctx:
        require_schema(ctx)
        found = installer.install_all(ctx, actor=CLI_ACTOR, names=names or None, publish=publish)
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
    start: str | None = typer.Option(
        None, help="when the simulated clock starts, like 2026-03-02T09:00:00Z (default: now)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the whole timeline as JSON"),
) -> None:
    """Run a journey for one made-up contact on a virtual clock; nothing is saved or sent."""
    request_data = read(script) if script else {}
    if not isinstance(request_data, dict):
        raise Invalid(f"{script}: a script is a mapping with a contact and its events", code="invalid_file")
    raw = read(file)
    support = raw if isinstance(raw, dict) and "definition" in raw else None
    if horizon:
        request_data["horizon"] = horizon
    if start:
        request_data["start"] = start
    with open_context() as ctx:
        require_schema(ctx)
        request = simulator.SimulationRequest.model_validate(request_data)
        result = simulator.simulate(ctx, load_file(file), request, support=support)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    table = Table("after", "step", "type", "branch", "email subject", "why not (or not then)")
    for moment in result.timeline:
        table.add_row(
            str(moment.at - result.started_at),
            moment.step,
            moment.type,
            moment.branch or "",
            moment.email.subject if moment.email else "",
            moment.reason or "",
        )
    console.print(f"from {result.started_at.isoformat()} on a scratch {result.database} database")
    if result.note:
        console.print(result.note)
    console.print(table)
    console.print(f"run: {result.run_status} {result.exit_reason or ''}")
