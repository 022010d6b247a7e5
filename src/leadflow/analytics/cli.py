"""``leadflow analytics ...``: the KPIs of a period, rolling up now, rebuilding the rollups."""

from __future__ import annotations

from datetime import datetime

import typer

from leadflow.analytics import service as analytics
from leadflow.contacts import service as contacts
from leadflow.journeys import service as journeys
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
    """Recompute the rollups from the raw events (all of them, or the days from --from on), and the
    journeys' A/B split counters and funnel counters from their runs, steps and clicks, and the kept
    total of contacts (always all of them)."""
    with open_context() as ctx:
        require_schema(ctx)
        progress = analytics.rebuild(ctx, start=start.date() if start else None)
        console.print(
            f"rebuilt from {start.date() if start else 'the first event'}: "
            f"{progress.batches} batch(es), up to event {progress.mark}"
        )
        console.print(f"split counters: {journeys.rebuild_split_counters(ctx)} row(s)")
        console.print(f"journey funnel counters: {journeys.rebuild_funnel_counters(ctx)} row(s)")
        console.print(f"contacts now: {contacts.recount_contacts(ctx)}")


alerts_app = typer.Typer(help="Threshold alerts: rules and their incidents.", no_args_is_help=True)
analytics_app.add_typer(alerts_app, name="alerts")


@alerts_app.command("rules")
def alerts_rules() -> None:
    """The alert rules."""
    with open_context() as ctx:
        require_schema(ctx)
        for rule in analytics.alert_rules(ctx):
            state = "on" if rule.enabled else "off"
            console.print(f"{rule.id}  {rule.metric:24} {rule.threshold:>10g}  {state:3}  {rule.name}")


@alerts_app.command("add")
def alerts_add(
    name: str = typer.Option(..., help="the rule's name"),
    metric: str = typer.Option(..., help=", ".join(analytics.ALERT_METRICS)),
    threshold: float | None = typer.Option(None, help="default: the metric's"),
    user: list[str] = typer.Option([], help="a CRM user id to email (repeat)"),
    webhook: bool = typer.Option(True, help="also send alert.opened / alert.resolved webhooks"),
) -> None:
    """Create an alert rule."""
    with open_context() as ctx:
        require_schema(ctx)
        data = analytics.AlertRuleFields(
            name=name, metric=metric, threshold=threshold, user_ids=user, webhook=webhook
        )
        rule = analytics.create_alert_rule(ctx, data, actor="cli")
        console.print(f"created {rule.id} ({rule.metric} threshold {rule.threshold:g})")


@alerts_app.command("remove")
def alerts_remove(rule_id: str) -> None:
    """Delete an alert rule (its incidents stay in the history)."""
    with open_context() as ctx:
        require_schema(ctx)
        analytics.delete_alert_rule(ctx, rule_id, actor="cli")
        console.print(f"deleted {rule_id}")


@alerts_app.command("incidents")
def alerts_incidents(open_only: bool = typer.Option(False, "--open", help="only the open ones")) -> None:
    """Incidents, newest first."""
    with open_context() as ctx:
        require_schema(ctx)
        for i in analytics.alert_incidents(ctx, open_only=open_only):
            until = i.resolved_at.isoformat() if i.resolved_at else "open"
            console.print(
                f"{i.id}  {i.rule_name or i.rule_id}  {i.subject or '-'}  {i.opened_at.isoformat()} → {until}"
            )


@alerts_app.command("check")
def alerts_check() -> None:
    """Evaluate the rules now (the worker does this every minute)."""
    with open_context() as ctx:
        require_schema(ctx)
        outcome = analytics.evaluate_alerts(ctx)
        console.print(f"{len(outcome.opened)} opened, {len(outcome.resolved)} resolved")


digests_app = typer.Typer(help="Scheduled KPI digests by email.", no_args_is_help=True)
analytics_app.add_typer(digests_app, name="digests")


@digests_app.command("list")
def digests_list() -> None:
    """The scheduled digests with their next due time."""
    with open_context() as ctx:
        require_schema(ctx)
        for d in analytics.digests(ctx):
            state = "on" if d.enabled else "off"
            console.print(f"{d.id}  {d.cron!r} {d.timezone}  next {d.next_at.isoformat()}  {state}  {d.name}")


@digests_app.command("add")
def digests_add(
    user: list[str] = typer.Option(..., help="a CRM user id to send it to (repeat)"),
    name: str = typer.Option("Weekly KPI digest", help="its name (in the subject)"),
    cron: str = typer.Option("0 8 * * 1", help="when (cron, in --timezone)"),
    timezone: str | None = typer.Option(None, help="default: the first user's time zone"),
) -> None:
    """Schedule a KPI digest."""
    with open_context() as ctx:
        require_schema(ctx)
        data = analytics.DigestFields(name=name, user_ids=user, cron=cron, timezone=timezone)
        found = analytics.create_digest(ctx, data, actor="cli")
        console.print(f"created {found.id}, next {found.next_at.isoformat()}")


@digests_app.command("remove")
def digests_remove(digest_id: str) -> None:
    """Delete a scheduled digest."""
    with open_context() as ctx:
        require_schema(ctx)
        analytics.delete_digest(ctx, digest_id, actor="cli")
        console.print(f"deleted {digest_id}")


@digests_app.command("send-due")
def digests_send_due() -> None:
    """Send the digests due now, once per period (the worker does this every minute)."""
    with open_context() as ctx:
        require_schema(ctx)
        console.print(f"{len(analytics.send_due_digests(ctx))} digest(s) sent")
