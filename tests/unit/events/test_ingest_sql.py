"""The tracking API's PostgreSQL insert is written out in full (a named statement, no assembly at run
time); it must name the columns of the JSON document, in order, with the types the table stores."""

from __future__ import annotations

from leadflow.events import queries
from leadflow.events.models import events

TYPES = {
    "jsonb": ("properties", "traits", "context", "integrations"),
    "timestamptz": ("timestamp", "received_at"),
}


def test_the_postgres_insert_names_every_column_in_order() -> None:
    names = ", ".join(queries.COLUMNS)
    record = ", ".join(
        f"{name} {next((t for t, cols in TYPES.items() if name in cols), 'varchar')}"
        for name in queries.COLUMNS
    )
    assert (
        f"INSERT INTO events ({names}) SELECT {names} FROM json_to_recordset(%s::json) AS r({record}) "
        "ON CONFLICT (message_id) DO NOTHING RETURNING type"
    ) == queries.INGEST_POSTGRES
    assert set(queries.COLUMNS) <= set(events.c.keys())
