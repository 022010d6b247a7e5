"""The ``leadflow`` command."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from leadflow.cli_errors import ErrorReportingGroup
from leadflow.journeys.cli import journeys_app, webhooks_app
from leadflow.kernel import migrate as migrations
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Misconfigured
from leadflow.kernel.settings import Settings
from leadflow.messaging.cli import email_app
from leadflow.runtime.context import build_context

app = typer.Typer(
    help="leadflow: marketing automation and CRM integration engine.",
    no_args_is_help=True,
    cls=ErrorReportingGroup,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
events_app = typer.Typer(help="The event log.", no_args_is_help=True)
segments_app = typer.Typer(help="Segments and static lists.", no_args_is_help=True)
scoring_app = typer.Typer(help="Lead scoring.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
app.add_typer(events_app, name="events")
app.add_typer(segments_app, name="segments")
app.add_typer(scoring_app, name="scoring")
app.add_typer(journeys_app, name="journeys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(email_app, name="email")

console = Console()
CLI_ACTOR = "cli"


@contextmanager
def _context() -> Iterator[AppContext]:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic says at INFO that it looked at the schema: noise on every command but ``migrate``.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx = build_context(settings)
    try:
        yield ctx
    finally:
        ctx.close()


def _require_schema(ctx: AppContext) -> None:
    if not migrations.is_up_to_date(ctx.db):
        raise Misconfigured("the database schema is not up to date: run `leadflow migrate` first")


@app.command()
def migrate() -> None:
    """Apply database migrations (SQLite or PostgreSQL, from LEADFLOW_DATABASE_URL)."""
    with _context() as ctx:
        logging.getLogger("alembic").setLevel(logging.getLogger().level)
        migrations.upgrade(ctx.db)
        console.print(f"database at revision {migrations.current_revision(ctx.db)} ({ctx.db.dialect})")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="default LEADFLOW_HOST (127.0.0.1)"),
    port: int | None = typer.Option(None, help="default LEADFLOW_PORT (8000)"),
    no_worker: bool = typer.Option(
        False, "--no-worker", help="serve HTTP only; run `leadflow worker` elsewhere"
    ),
    processes: int = typer.Option(1, "--processes", min=1, help="HTTP server processes (PostgreSQL)"),
) -> None:
    """Start the API (and, unless --no-worker, an in-process worker)."""
    from leadflow.api.server import serve as run_server
    from leadflow.runtime.bootstrap import banner, first_start

    with _context() as ctx:
        _require_schema(ctx)
        settings = ctx.settings
        found = first_start(ctx)
        if found:
            typer.echo(banner(found, settings.public_url))
        console.print(
            f"leadflow on http://{host or settings.host}:{port or settings.port} ({ctx.db.dialect})"
        )
        console.print(f"email: {_email_destination(settings)}")
        run_server(
            ctx,
            host=host or settings.host,
            port=port or settings.port,
            run_worker=not no_worker,
            processes=processes,
            log_level=settings.log_level.lower(),
        )


def _email_destination(settings: Settings) -> str:
    """Where email goes, said at start-up: with no SMTP server configured it is written to files."""
    if settings.smtp_url is None:
        outbox = Path(settings.email_outbox_dir).resolve()
        return f"no LEADFLOW_SMTP_URL set: messages are written to {outbox} as .eml files"
    from leadflow.messaging.delivery.transport.smtp import parse_smtp_url

    found = parse_smtp_url(settings.smtp_url.get_secret_value())
    return f"SMTP {found.host}:{found.port}"


@app.command()
def worker(concurrency: int = typer.Option(1, min=1, help="worker threads")) -> None:
    """Run background processing only (scale out: run one per machine against PostgreSQL)."""
    from leadflow.runtime import collector
    from leadflow.runtime.worker import Worker

    with _context() as ctx:
        _require_schema(ctx)
        collector.tune()
        runner = Worker(ctx, concurrency=concurrency)
        runner.start()
        console.print(f"worker running with {concurrency} thread(s); Ctrl-C stops it")
        try:
            runner.wait()
        except KeyboardInterrupt:
            runner.stop()


@app.command()
def doctor(
    timeout: float = typer.Option(3.0, min=0.1, help="seconds to wait for the SMTP server and the base URL"),
) -> None:
    """List what real sending still lacks (SMTP, sender, brand, postal address, DKIM, a reachable base
    URL), each with what to set; exit status 1 while anything does."""
    from leadflow.messaging.doctor import report

    raise typer.Exit(report(Settings(), console, timeout=timeout))


@keys_app.command("create")
def keys_create(
    name: str = typer.Option(..., help="what the key is for"),
    scopes: str = typer.Option("ingest", help="comma-separated: ingest, read, write, admin"),
) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    from leadflow.auth import service as keys

    with _context() as ctx:
        _require_schema(ctx)
        with ctx.db.write() as conn:
            view, plaintext = keys.create_key(
                conn, ctx.clock, name=name, scopes=scopes.split(","), actor=CLI_ACTOR
            )
        console.print(f"created key {view.id} ({', '.join(view.scopes)})")
        print(plaintext)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (never their secrets)."""
    from leadflow.auth import service as keys

    with _context() as ctx:
        with ctx.db.read() as conn:
            found = keys.list_keys(conn)
        table = Table("id", "name", "prefix", "scopes", "created", "revoked")
        for key in found:
            table.add_row(
                key.id,
                key.name,
                key.prefix,
                ",".join(key.scopes),
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
        console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke an API key."""
    from leadflow.auth import service as keys

    with _context() as ctx:
        with ctx.db.write() as conn:
            keys.revoke_key(conn, ctx.clock, key_id, actor=CLI_ACTOR)
        console.print(f"revoked {key_id}")


MAP_HELP = "read column HEADER as FIELD (email, first_name, company_domain, traits.NAME …; empty: skip it)"


@import_app.command("contacts")
def import_contacts(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    mapping: list[str] = typer.Option([], "--map", metavar="HEADER=FIELD", help=MAP_HELP),
) -> None:
    """Upsert contacts by email from a CSV file; rejected rows are reported with line and reason.
    The accepted columns are listed in docs/api.md (CSV import)."""
    from leadflow.contacts.cli import run_import

    with _context() as ctx:
        _require_schema(ctx)
        raise typer.Exit(run_import(ctx, path, console, actor=CLI_ACTOR, mapping=mapping))


@events_app.command("requeue-failed")
def events_requeue_failed() -> None:
    """Put events the processor set aside with an error back in the queue (after fixing the cause)."""
    from leadflow.audit import service as audit
    from leadflow.events import service as events

    with _context() as ctx:
        _require_schema(ctx)
        with ctx.db.write() as conn:
            count = events.requeue_failed(conn)
            audit.record(
                conn,
                ctx.clock,
                actor=CLI_ACTOR,
                action="events.requeued",
                entity_type="event",
                entity_id=None,
                data={"count": count},
            )
        console.print(f"requeued {count} failed event(s)")


@segments_app.command("install-library")
def segments_install_library() -> None:
    """Create the standard segments (active, churned, high-value, new, trial, paid, cart abandoners)."""
    from leadflow.segments import library

    with _context() as ctx:
        _require_schema(ctx)
        created = library.install(ctx, actor=CLI_ACTOR)
        for segment in created:
            console.print(f"created {segment.name} ({segment.id})")
        console.print(f"{len(created)} segment(s) created; the worker computes their members shortly")


@segments_app.command("refresh")
def segments_refresh(segment_id: str) -> None:
    """Recompute a dynamic segment now."""
    from leadflow.segments import service as segments

    with _context() as ctx:
        _require_schema(ctx)
        result = segments.refresh(ctx, segment_id)
        console.print(f"{result.members} member(s): {result.entered} entered, {result.exited} left")


@scoring_app.command("install-defaults")
def scoring_install_defaults(rule_set: str = typer.Option(..., "--set", help="course or b2b")) -> None:
    """Install a shipped rule set and its score bands."""
    from leadflow.scoring import service as scoring

    with _context() as ctx:
        _require_schema(ctx)
        created = scoring.install_defaults(ctx, rule_set, actor=CLI_ACTOR)
        for rule in created:
            console.print(f"created rule {rule.name} ({rule.points:+g})")
        console.print(
            f"{len(created)} rule(s) installed; run `leadflow scoring recompute` to score history now"
        )


@scoring_app.command("recompute")
def scoring_recompute() -> None:
    """Recompute every contact's score from the event log (set-based), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from leadflow.scoring import service as scoring

    with _context() as ctx:
        _require_schema(ctx)
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


@import_app.command("list")
def import_list(
    segment_id: str = typer.Argument(..., help="a static list"),
    path: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    mapping: list[str] = typer.Option([], "--map", metavar="HEADER=FIELD", help=MAP_HELP),
) -> None:
    """Upsert contacts by email from a CSV file and add them to a static list."""
    from leadflow.segments.cli import import_list as run_list_import

    with _context() as ctx:
        _require_schema(ctx)
        status = run_list_import(ctx, segment_id, path, console, actor=CLI_ACTOR, mapping=mapping)
        raise typer.Exit(status)


def main() -> None:
    app()
