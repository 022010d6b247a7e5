"""What every ``leadflow`` command shares: the root group that reports mistakes, the application
context a command opens, the schema check, the actor commands act as, and the console they print on.

How a mistake is reported: one line on stderr, a non-zero exit, no traceback. Every command runs
inside :class:`ErrorReportingGroup`, the root command group, so commands raise (a
:class:`~leadflow.kernel.errors.LeadflowError`, an ``OSError``, a file that does not parse, a value
pydantic refuses, a database that cannot be reached) and never catch to print. Exit statuses: ``2``
when what was asked is wrong (a bad option, value or file content, an unknown id), ``1`` when the
system could not do it (a file that cannot be read or written, a database that cannot be reached).

The context: each domain's ``cli.py`` opens one with :func:`open_context`. Building it wires every
domain together, which only the composition root may do, so ``leadflow.cli`` hands the builder over
with :func:`use_context_builder` when it is imported; the kernel imports nothing above it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from sqlalchemy import exc as sql
from typer.core import TyperGroup

from leadflow.kernel import migrate as migrations
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError, Misconfigured
from leadflow.kernel.settings import Settings

USAGE = 2
FAILED = 1
CLI_ACTOR = "cli"
"""The actor the audit log names for what a command did."""

console = Console()

ContextBuilder = Callable[[Settings], AppContext]
_builders: list[ContextBuilder] = []


def use_context_builder(build: ContextBuilder) -> None:
    """Set how :func:`open_context` builds the application context (``leadflow.cli`` does, on import)."""
    _builders[:] = [build]


@contextmanager
def open_context() -> Iterator[AppContext]:
    """The application context for one command, from the environment's settings; closed on leaving."""
    if not _builders:
        raise RuntimeError("no context builder: import leadflow.cli, which wires the application")
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Alembic says at INFO that it looked at the schema: noise on every command but ``migrate``.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLogger().level))
    ctx = _builders[0](settings)
    try:
        yield ctx
    finally:
        ctx.close()


def require_schema(ctx: AppContext) -> None:
    """Refuse to work on a database whose schema is behind the code."""
    if not migrations.is_up_to_date(ctx.db):
        raise Misconfigured("the database schema is not up to date: run `leadflow migrate` first")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _validation(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()))
        message = str(item.get("msg", "")).removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return "; ".join(problems)


def yaml_problem(error: yaml.YAMLError) -> str:
    """A YAML parse error in one line, with where it is."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML: {problem}{where}"


def _usage(error: BaseException) -> tuple[str, int] | None:
    """A command-line usage error (bad option or argument, missing file): typer raises click's classes,
    vendored (typer 0.2x) or not, hence the test by name. ``leadflow keys`` alone still shows its help."""
    names = {kind.__name__ for kind in type(error).__mro__}
    if "ClickException" not in names or "NoArgsIsHelpError" in names:
        return None
    found: Any = error
    return str(found.format_message()), int(found.exit_code)


def describe(error: BaseException) -> tuple[str, int] | None:
    """The line to print and the exit status for an error a user can cause, ``None`` for a bug."""
    if isinstance(error, LeadflowError):
        return error.message, USAGE
    usage = _usage(error)
    if usage is not None:
        return usage
    if isinstance(error, ValidationError):
        return _validation(error), USAGE
    if isinstance(error, yaml.YAMLError):
        return yaml_problem(error), USAGE
    if isinstance(error, UnicodeDecodeError):
        return f"not UTF-8 text: {error.reason} at byte {error.start}", USAGE
    if isinstance(error, sql.ArgumentError):
        return f"LEADFLOW_DATABASE_URL: {error}", USAGE
    if isinstance(error, sql.OperationalError):
        return f"the database cannot be used: {error.orig or error}", FAILED
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return (f"{error.filename}: {reason}" if error.filename else reason), FAILED
    return None


class ErrorReportingGroup(TyperGroup):
    """The root group: whatever a subcommand raises that a user can cause becomes ``error: ...``."""

    def invoke(self, ctx: Any) -> Any:  # click's Context, vendored by typer 0.2x
        try:
            return super().invoke(ctx)
        except Exception as error:
            found = describe(error)
            if found is None:
                raise
            message, status = found
            typer.echo(f"error: {one_line(message)}", err=True)
            raise typer.Exit(status) from None
