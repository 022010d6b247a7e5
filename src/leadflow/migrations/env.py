"""Alembic environment: one set of migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from alembic import context

from leadflow.kernel.db import Database, advisory_lock
from leadflow.tables import metadata


def run_migrations_online() -> None:
    db: Database = context.config.attributes["database"]
    with db.engine.connect() as connection:
        connection.execution_options(leadflow_write=True)
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            compare_type=True,
        )
        with context.begin_transaction():
            advisory_lock(connection, "leadflow.migrate")
            context.run_migrations()


run_migrations_online()
