"""Per-installation values kept in the database: the generated secret key, first-start markers."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import Database, insert_ignore, metadata

instance_values = sa.Table(
    "instance_values",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def claim(conn: Connection, key: str, value: str) -> bool:
    """Store ``value`` under ``key`` unless present; True when this call stored it (first one wins)."""
    statement = insert_ignore(conn, instance_values, ["key"]).returning(instance_values.c.key)
    return conn.execute(statement, {"key": key, "value": value}).first() is not None


def get(conn: Connection, key: str) -> str | None:
    return conn.execute(sa.select(instance_values.c.value).where(instance_values.c.key == key)).scalar()


def secret_key(db: Database) -> str:
    """The installation's signing secret: generated once and shared by every process."""
    with db.write() as conn:
        claim(conn, "secret_key", secrets.token_urlsafe(48))
        value = get(conn, "secret_key")
    assert value is not None
    return value
