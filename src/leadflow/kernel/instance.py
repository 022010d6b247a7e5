"""Per-installation values kept in the database: the generated secret key, first-start markers."""

from __future__ import annotations

import secrets

from sqlalchemy.engine import Connection

from leadflow.kernel import queries
from leadflow.kernel.db import Database
from leadflow.kernel.models import instance_values as instance_values


def claim(conn: Connection, key: str, value: str) -> bool:
    """Store ``value`` under ``key`` unless present; True when this call stored it (first one wins)."""
    statement = queries.claim_instance_value(conn.dialect.name)
    return conn.execute(statement, {"key": key, "value": value}).first() is not None


def get(conn: Connection, key: str) -> str | None:
    value: str | None = conn.execute(queries.INSTANCE_VALUE, {"key": key}).scalar()
    return value


def secret_key(db: Database) -> str:
    """The installation's signing secret: generated once and shared by every process."""
    with db.write() as conn:
        claim(conn, "secret_key", secrets.token_urlsafe(48))
        value = get(conn, "secret_key")
    assert value is not None
    return value
