"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

from leadflow.kernel.clock import as_utc


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores UTC (naive on SQLite, ``timestamptz`` on PostgreSQL); always returns aware UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> sa.types.TypeEngine[Any]:
    """JSON text on SQLite, JSONB on PostgreSQL; Python ``None`` is SQL NULL."""
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def bigint_pk() -> sa.types.TypeEngine[int]:
    """BIGINT on PostgreSQL; on SQLite an INTEGER primary key is the rowid itself."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


ID_LENGTH = 26
