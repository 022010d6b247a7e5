"""``leadflow crm routing ...`` and ``leadflow crm sla ...``: routing rules and SLA states from the
command line (mounted by :mod:`leadflow.crm.cli`)."""

from __future__ import annotations

import json
from typing import Any

import typer

from leadflow.crm import routing, sla
from leadflow.crm.routing_schemas import RuleCreate
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema

routing_app = typer.Typer(help="Routing rules: who owns a lead once it qualifies.", no_args_is_help=True)
sla_app = typer.Typer(help="SLA states of qualified leads.", no_args_is_help=True)


def _rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    for row in (header, *rows):
        typer.echo("\t".join(row))


@routing_app.command("list")
def routing_list() -> None:
    """List routing rules in the order they are evaluated."""
    with open_context() as ctx:
        require_schema(ctx)
        rules = routing.list_rules(ctx)
        conf = routing.get_config(ctx)
    _rows(
        ("position", "id", "name", "target", "condition", "hours", "active"),
        [
            (
                str(r.position),
                r.id,
                r.name,
                f"team:{r.team_id}" if r.team_id else f"user:{r.user_id}",
                json.dumps(r.condition) if r.condition else "*",
                "respected" if r.respect_working_hours else "ignored",
                "yes" if r.active else "no",
            )
            for r in rules
        ],
    )
    console.print(f"fallback owner: {conf.fallback_owner_id or 'none'}")


def _condition(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--condition") from None


@routing_app.command("add")
def routing_add(
    name: str = typer.Option(..., help="what the rule is for"),
    team_id: str | None = typer.Option(None, "--team", help="round-robin within this team"),
    user_id: str | None = typer.Option(None, "--user", help="or this user"),
    condition: str | None = typer.Option(
        None, help='a segment rule as JSON, e.g. {"field": "score", "op": "gte", "value": 50}'
    ),
    position: int | None = typer.Option(None, min=0, help="evaluation order (default: last)"),
    respect_working_hours: bool = typer.Option(False, "--respect-working-hours", help="skip users off duty"),
) -> None:
    """Add a routing rule; prints its id last."""
    values: dict[str, Any] = {
        "name": name,
        "team_id": team_id,
        "user_id": user_id,
        "condition": _condition(condition),
    }
    values |= {"respect_working_hours": respect_working_hours}
    if position is not None:
        values["position"] = position
    data = RuleCreate.model_validate(values)
    with open_context() as ctx:
        require_schema(ctx)
        rule = routing.create_rule(ctx, data, actor=CLI_ACTOR)
    console.print(f"added routing rule {rule.name} at position {rule.position}")
    typer.echo(rule.id)


@sla_app.command("list")
def sla_list(
    owner_id: str | None = typer.Option(None, "--owner", help="the lead's owner"),
    state: str | None = typer.Option(
        None, help="awaiting_assignment, awaiting_response, breached, escalated or responded"
    ),
    limit: int = typer.Option(100, min=1, max=500),
) -> None:
    """List SLA states of qualified leads."""
    with open_context() as ctx:
        require_schema(ctx)
        found = sla.listing(ctx, owner_id=owner_id, state=state, after=None, limit=limit)

    def at(value: Any) -> str:
        return value.isoformat(timespec="seconds") if value else ""

    _rows(
        ("contact", "owner", "state", "qualified", "due", "breached", "escalated"),
        [
            (
                s.contact_id,
                s.owner_id or "",
                s.state,
                at(s.qualified_at),
                at(s.first_response_due_at),
                at(s.breached_at),
                at(s.escalated_at),
            )
            for s in found
        ],
    )
