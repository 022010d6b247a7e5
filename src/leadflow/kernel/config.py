"""Operator-editable configuration kept in the database (score bands, decay, the MQL rule …).

Every process reads the same values; a change through the API is audited by the caller.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from leadflow.kernel import queries
from leadflow.kernel.clock import Clock
from leadflow.kernel.models import config_entries as config_entries


def get(conn: Connection, key: str, default: Any = None) -> Any:
    value = conn.execute(queries.CONFIG_VALUE, {"key": key}).scalar()
    return default if value is None else value


def delete(conn: Connection, key: str) -> None:
    conn.execute(queries.DELETE_CONFIG, {"key": key})


def put(conn: Connection, clock: Clock, key: str, value: Any) -> None:
    conn.execute(
        queries.put_config(conn.dialect.name), {"key": key, "value": value, "updated_at": clock.now()}
    )
