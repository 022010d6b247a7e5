"""The kernel's statements: per-installation values and operator-editable configuration."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadflow.kernel.db import Sample, insert_for
from leadflow.kernel.models import config_entries, instance_values

#: The transaction's snapshot, for other transactions to import (PostgreSQL; kernel/snapshot_reads.py).
EXPORT_SNAPSHOT = sa.text("SELECT pg_export_snapshot()")
#: Take the snapshot ``:snapshot`` another transaction exported: the first statement of a REPEATABLE READ
#: transaction. ``SET`` takes no parameters, so the id is rendered as a quoted literal when executed.
IMPORT_SNAPSHOT = sa.text("SET TRANSACTION SNAPSHOT :snapshot").bindparams(
    sa.bindparam("snapshot", value="", type_=sa.String(), literal_execute=True)
)

#: The value stored under ``:key``.
INSTANCE_VALUE = sa.select(instance_values.c.value).where(instance_values.c.key == sa.bindparam("key"))

#: The configuration entry ``:key``.
CONFIG_VALUE = sa.select(config_entries.c.value).where(config_entries.c.key == sa.bindparam("key"))
DELETE_CONFIG = config_entries.delete().where(config_entries.c.key == sa.bindparam("key"))


def claim_instance_value(dialect: str) -> Any:
    """Store ``:key`` → ``:value`` unless the key is present, returning the key only when it stored it."""
    statement = insert_for(dialect, instance_values).on_conflict_do_nothing(index_elements=["key"])
    return statement.returning(instance_values.c.key)


def put_config(dialect: str) -> Any:
    """Set ``:key`` to ``:value`` (at ``:updated_at``), inserting the entry or replacing it."""
    statement = insert_for(dialect, config_entries)
    return statement.on_conflict_do_update(
        index_elements=["key"],
        set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
    )


SAMPLES: list[Sample] = [
    lambda: [claim_instance_value("sqlite"), claim_instance_value("postgresql")],
    lambda: [put_config("sqlite"), put_config("postgresql")],
]
