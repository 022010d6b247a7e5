"""The ``leadflow`` command: the process commands (migrate, serve, worker) and every domain's commands,
assembled from the domains' ``cli.py``. The application context they open is built here, the
composition root (see :func:`leadflow.kernel.commands.use_context_builder`)."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

import typer

from leadflow.analytics.cli import analytics_app
from leadflow.auth.cli import keys_app
from leadflow.connectors.cli import connectors_app
from leadflow.contacts.cli import import_app as import_contacts_app
from leadflow.crm.cli import crm_app
from leadflow.events.cli import events_app
from leadflow.journeys.cli import journeys_app
from leadflow.kernel import commands
from leadflow.kernel import migrate as migrations
from leadflow.kernel.commands import console, open_context, require_schema
from leadflow.kernel.settings import Settings
from leadflow.messaging.cli import email_app
from leadflow.messaging.cli import root_app as messaging_root_app
from leadflow.messaging.delivery.transport.smtp import parse_smtp_url
from leadflow.runtime import collector
from leadflow.runtime.bootstrap import banner, first_start
from leadflow.runtime.context import build_context
from leadflow.runtime.worker import Worker
from leadflow.scheduling.cli import scheduling_app
from leadflow.scoring.cli import scoring_app
from leadflow.segments.cli import import_app as import_list_app
from leadflow.segments.cli import segments_app
from leadflow.web import service as web
from leadflow.webhooks.cli import webhooks_app

commands.use_context_builder(build_context)

app = typer.Typer(
    help="leadflow: marketing automation and CRM integration engine.",
    no_args_is_help=True,
    cls=commands.ErrorReportingGroup,
)
import_app = typer.Typer(help="Import data.", no_args_is_help=True)
import_app.add_typer(import_contacts_app)
import_app.add_typer(import_list_app)
app.add_typer(messaging_root_app)  # doctor
app.add_typer(keys_app, name="keys")
app.add_typer(import_app, name="import")
app.add_typer(events_app, name="events")
app.add_typer(segments_app, name="segments")
app.add_typer(scoring_app, name="scoring")
app.add_typer(journeys_app, name="journeys")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(connectors_app, name="connectors")
app.add_typer(web.console_app, name="console")
app.add_typer(analytics_app, name="analytics")
app.add_typer(crm_app, name="crm")
app.add_typer(scheduling_app, name="scheduling")
app.add_typer(email_app, name="email")

HTTP_SERVER = "leadflow.api.server"
"""Loaded by ``serve`` only: the HTTP stack (FastAPI and every router) would add a third to the start-up
time of every other command. The one import by name in src, checked by tests/unit/test_architecture.py."""


@app.command()
def migrate() -> None:
    """Apply database migrations (SQLite or PostgreSQL, from LEADFLOW_DATABASE_URL)."""
    with open_context() as ctx:
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
    server = importlib.import_module(HTTP_SERVER)
    with open_context() as ctx:
        require_schema(ctx)
        settings = ctx.settings
        found = first_start(ctx)
        if found:
            typer.echo(banner(found, settings.public_url))
        console_link = web.first_start_banner(ctx)  # while no admin can sign in to the console
        if console_link:
            typer.echo(console_link)
        console.print(
            f"leadflow on http://{host or settings.host}:{port or settings.port} ({ctx.db.dialect})"
        )
        console.print(f"email: {_email_destination(settings)}")
        server.serve(
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
    found = parse_smtp_url(settings.smtp_url.get_secret_value())
    return f"SMTP {found.host}:{found.port}"


@app.command()
def worker(concurrency: int = typer.Option(1, min=1, help="worker threads")) -> None:
    """Run background processing only (scale out: run one per machine against PostgreSQL)."""
    with open_context() as ctx:
        require_schema(ctx)
        collector.tune()
        runner = Worker(ctx, concurrency=concurrency)
        runner.start()
        console.print(f"worker running with {concurrency} thread(s); Ctrl-C stops it")
        try:
            runner.wait()
        except KeyboardInterrupt:
            runner.stop()


def main() -> None:
    app()
