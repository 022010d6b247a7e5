"""``leadflow events ...``: the event log."""

from __future__ import annotations

import typer

from leadflow.audit import service as audit
from leadflow.events import service as events
from leadflow.kernel.commands import CLI_ACTOR, console, open_context, require_schema

events_app = typer.Typer(help="The event log.", no_args_is_help=True)


@events_app.command("requeue-failed")
def events_requeue_failed() -> None:
    """Put events the processor set aside with an error back in the queue (after fixing the cause)."""
    with open_context() as ctx:
        require_schema(ctx)
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
