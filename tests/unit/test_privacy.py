"""The privacy registry names every text and JSON column of every table, and nothing else."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.privacy import REGISTRY, Treatment, personal_columns
from leadflow.tables import metadata


def _textual(column: sa.Column[object]) -> bool:
    return isinstance(column.type, sa.String | sa.JSON)


def test_every_text_and_json_column_of_every_table_is_classified() -> None:
    missing = [
        f"{table.name}.{column.name}"
        for table in metadata.sorted_tables
        for column in table.columns
        if _textual(column) and column.name not in REGISTRY.get(table.name, {})
    ]
    assert not missing, f"classify these columns in leadflow/privacy.py: {missing}"


def test_the_registry_names_only_columns_that_exist() -> None:
    tables = {table.name: table for table in metadata.sorted_tables}
    stale = [
        f"{name}.{column}"
        for name, columns in REGISTRY.items()
        for column in columns
        if name not in tables or column not in tables[name].c or not _textual(tables[name].c[column])
    ]
    assert not stale, stale


def test_personal_columns_leave_out_what_is_not_personal() -> None:
    assert personal_columns("messages") == {
        "to_address": Treatment.REDACTED,
        "context": Treatment.REDACTED,
        "recipient": Treatment.REDACTED,
        "subject": Treatment.REDACTED,
        "error": Treatment.REDACTED,
        "response": Treatment.REDACTED,
    }
    assert personal_columns("suppressions")["email"] == Treatment.DIGEST
    assert personal_columns("api_keys") == {}
