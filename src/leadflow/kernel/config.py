"""Operator-editable configuration kept in the database (score bands, decay, the MQL rule …).

Every process reads the same values; a change through the API is audited by the caller.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.clock import Clock
from leadflow.kernel.db import dialect_insert, metadata
from leadflow.kernel.types import UTCDateTime, json_type

config_entries = sa.Table(
    "config_entries",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", json_type(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


def get(conn: Connection, key: str, default: Any = None) -> Any:
    value = conn.execute(sa.select(config_entries.c.value).where(config_entries.c.key == key)).scalar()
    return default if value is None else value


def delete(conn: Connection, key: str) -> None:
    conn.execute(config_entries.delete().where(config_entries.c.key == key))


def put(conn: Connection, clock: Clock, key: str, value: Any) -> None:
    statement = dialect_insert(conn, config_entries).values(key=key, value=value, updated_at=clock.now())
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )
