"""``leadflow crm ...``: the CRM's users, leads, pipelines and deals from the command line."""

from __future__ import annotations

import typer

from leadflow.crm import deals, leads, people, pipelines, stage_counters
from leadflow.crm.routing_cli import routing_app, sla_app
from leadflow.crm.schemas import LeadFilter, StatusChange, UserCreate
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema

crm_app = typer.Typer(help="The built-in CRM: users and leads.", no_args_is_help=True)
users_app = typer.Typer(help="The business's users (lead owners).", no_args_is_help=True)
leads_app = typer.Typer(help="Leads: contacts with a sales status.", no_args_is_help=True)
crm_app.add_typer(users_app, name="users")
crm_app.add_typer(leads_app, name="leads")
pipelines_app = typer.Typer(help="Sales pipelines and their stages.", no_args_is_help=True)
deals_app = typer.Typer(help="Deals moving through a pipeline.", no_args_is_help=True)
crm_app.add_typer(pipelines_app, name="pipelines")
crm_app.add_typer(deals_app, name="deals")
crm_app.add_typer(routing_app, name="routing")
crm_app.add_typer(sla_app, name="sla")
stats_app = typer.Typer(help="The pipeline stats' per-day counters.", no_args_is_help=True)
crm_app.add_typer(stats_app, name="stats")


def _rows(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """Tab-separated lines under a header: whole ids and addresses, whatever the terminal's width."""
    for row in (header, *rows):
        typer.echo("\t".join(row))


@users_app.command("list")
def users_list(limit: int = typer.Option(100, min=1, max=500)) -> None:
    """List users."""
    with open_context() as ctx:
        require_schema(ctx)
        found = people.list_users(ctx, after=None, limit=limit)
    _rows(
        ("id", "name", "email", "role", "team", "time zone", "capacity", "active"),
        [
            (
                u.id,
                u.name,
                u.email,
                u.role,
                u.team_id or "",
                u.timezone,
                str(u.capacity),
                "yes" if u.active else "no",
            )
            for u in found
        ],
    )


@users_app.command("add")
def users_add(
    name: str = typer.Option(..., help="full name"),
    email: str = typer.Option(..., help="work address"),
    role: str = typer.Option("sales", help="admin, marketer, sales or viewer"),
    team_id: str | None = typer.Option(None, "--team", help="team id"),
    timezone: str = typer.Option("UTC", help="IANA time zone, e.g. Europe/Berlin"),
    capacity: int = typer.Option(1, min=0, help="routing weight"),
) -> None:
    """Add a user; prints its id last."""
    data = UserCreate.model_validate(
        {
            "name": name,
            "email": email,
            "role": role,
            "team_id": team_id,
            "timezone": timezone,
            "capacity": capacity,
        }
    )
    with open_context() as ctx:
        require_schema(ctx)
        user = people.create_user(ctx, data, actor=CLI_ACTOR)
    console.print(f"added {user.name} <{user.email}> ({user.role})")
    typer.echo(user.id)


@leads_app.command("list")
def leads_list(
    status: list[str] | None = typer.Option(None, help="a status; repeat for several"),
    owner_id: str | None = typer.Option(None, "--owner", help="an owner's user id"),
    q: str | None = typer.Option(None, help="part of the name or email"),
    limit: int = typer.Option(50, min=1, max=500),
) -> None:
    """List leads, newest first."""
    where = LeadFilter(status=status or None, owner_id=owner_id, q=q)
    with open_context() as ctx:
        require_schema(ctx)
        found = leads.search(ctx, where, before=None, limit=limit)
    _rows(
        ("email", "name", "status", "owner", "stage", "score", "created"),
        [
            (
                lead.email or lead.contact_id,
                " ".join(part for part in (lead.first_name, lead.last_name) if part),
                lead.status,
                lead.owner_id or "",
                lead.lifecycle_stage,
                f"{lead.score:g}",
                lead.created_at.isoformat(timespec="seconds"),
            )
            for lead in found
        ],
    )


@leads_app.command("show")
def leads_show(email: str = typer.Argument(..., help="the lead's address")) -> None:
    """Show one lead as JSON."""
    with open_context() as ctx:
        require_schema(ctx)
        lead = leads.get(ctx, email)
    typer.echo(lead.model_dump_json(indent=2))


@leads_app.command("status")
def leads_status(
    email: str = typer.Argument(..., help="the lead's address"),
    status: str = typer.Argument(..., help="new, contacted, qualified, unqualified, customer or lost"),
    reason: str | None = typer.Option(None, help="required for unqualified and lost"),
) -> None:
    """Set a lead's status (audited, an event of the pipeline)."""
    change = StatusChange.model_validate({"status": status, "reason": reason})
    with open_context() as ctx:
        require_schema(ctx)
        lead = leads.change_status(ctx, email, change, actor=CLI_ACTOR)
    console.print(f"{email}: {lead.status}" + (f" ({lead.reason})" if lead.reason else ""))


# ---- pipelines and deals ---------------------------------------------------------------------------


@pipelines_app.command("list")
def pipelines_list() -> None:
    """List pipelines with their stages (name:probability%, in order)."""
    with open_context() as ctx:
        require_schema(ctx)
        found = pipelines.listing(ctx)
    _rows(
        ("id", "name", "default", "stages"),
        [
            (
                p.id,
                p.name,
                "yes" if p.is_default else "no",
                ", ".join(f"{s.name}:{s.probability}%" for s in p.stages),
            )
            for p in found
        ],
    )


@deals_app.command("list")
def deals_list(
    pipeline_id: str | None = typer.Option(None, "--pipeline", help="a pipeline id"),
    status: str | None = typer.Option(None, help="open, won or lost"),
    owner_id: str | None = typer.Option(None, "--owner", help="an owner's user id"),
    email: str | None = typer.Option(None, help="the contact's address"),
    limit: int = typer.Option(50, min=1, max=500),
) -> None:
    """List deals, newest first."""
    if status is not None and status not in ("open", "won", "lost"):
        raise typer.BadParameter("open, won or lost", param_hint="--status")
    with open_context() as ctx:
        require_schema(ctx)
        found = deals.listing(
            ctx,
            pipeline_id=pipeline_id,
            stage_id=None,
            owner_id=owner_id,
            email=email,
            status=status,
            before=None,
            limit=limit,
        )
    _rows(
        ("id", "title", "stage", "status", "value", "currency", "owner", "created"),
        [
            (
                d.id,
                d.title,
                d.stage,
                d.status,
                str(d.value),
                d.currency,
                d.owner_id or "",
                d.created_at.isoformat(timespec="seconds"),
            )
            for d in found
        ],
    )


@deals_app.command("add")
def deals_add(
    title: str = typer.Option(..., help="what is sold"),
    value: str = typer.Option(..., help="amount, e.g. 1499.00"),
    currency: str = typer.Option(..., help="ISO 4217 code, e.g. EUR"),
    email: str | None = typer.Option(None, help="the contact's address"),
    pipeline_id: str | None = typer.Option(None, "--pipeline", help="a pipeline id (the default if omitted)"),
    stage: str | None = typer.Option(None, help="a stage name or id (the first open stage if omitted)"),
    owner_id: str | None = typer.Option(None, "--owner", help="an owner's user id"),
    reason: str | None = typer.Option(None, help="required for a won or lost stage"),
) -> None:
    """Open a deal; prints its id last."""
    data = deals.DealCreate.model_validate(
        {
            "title": title,
            "value": value,
            "currency": currency,
            "email": email,
            "pipeline_id": pipeline_id,
            "stage": stage,
            "owner_id": owner_id,
            "reason": reason,
        }
    )
    with open_context() as ctx:
        require_schema(ctx)
        deal = deals.create(ctx, data, actor=CLI_ACTOR)
    console.print(f"added {deal.title}: {deal.value} {deal.currency} ({deal.stage})")
    typer.echo(deal.id)


@deals_app.command("move")
def deals_move(
    deal_id: str = typer.Argument(..., help="the deal's id"),
    stage: str = typer.Argument(..., help="a stage name or id of its pipeline"),
    reason: str | None = typer.Option(None, help="required for a won or lost stage"),
) -> None:
    """Move a deal to a stage (audited, deal.stage_changed)."""
    change = deals.DealFields.model_validate({"stage": stage, "reason": reason})
    with open_context() as ctx:
        require_schema(ctx)
        deal = deals.update(ctx, deal_id, change, actor=CLI_ACTOR)
    console.print(f"{deal.id}: {deal.stage}" + (f" ({deal.reason})" if deal.reason else ""))


@stats_app.command("rebuild")
def stats_rebuild(
    pipeline_id: str | None = typer.Option(None, "--pipeline", help="one pipeline (all if omitted)"),
) -> None:
    """Recompute the pipeline stats' counters from the deals and their stage history (set-based; after a
    bulk load that bypassed the API, or to check them)."""
    with open_context() as ctx:
        require_schema(ctx)
        stage_counters.rebuild_in(ctx, pipeline_id)
    console.print("pipeline stats rebuilt" + (f" for {pipeline_id}" if pipeline_id else ""))
