"""Synthetic data for bench/segments.py: contacts and events loaded straight into the tables."""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa

from leadflow.kernel.db import Database

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PLANS = ["free", "free", "trial", "pro", "business"]
COUNTRIES = ["US", "CA", "UK", "DE", "FR", "IN", "BR"]
STAGES = ["visitor", "lead", "lead", "mql", "customer"]
EVENTS = [
    "Course Previewed",
    "Lesson Completed",
    "Content Downloaded",
    "Order Completed",
    "Product Added",
    "leadflow.email_sent",
    "leadflow.email_opened",
    "leadflow.email_clicked",
    "Signed Up",
    "Video Played",
]
WEIGHTS = [6, 10, 4, 1, 2, 8, 5, 2, 1, 6]
JOURNEYS = ["welcome", "nurture", "cart"]


def contact_id(n: int) -> str:
    return f"C{n:025d}"


def contacts(count: int, seed: int = 7) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for n in range(count):
        created = NOW - timedelta(minutes=rng.randrange(0, 200 * 24 * 60))
        traits = {"plan": rng.choice(PLANS), "country": rng.choice(COUNTRIES), "seats": rng.randrange(1, 50)}
        yield (
            contact_id(n),
            f"user-{n}",
            f"p{n}@example.com",
            orjson.dumps(traits).decode(),
            STAGES[n % 5],
            "subscribed",
            "{}",
            created,
            created,
            NOW - timedelta(minutes=rng.randrange(0, 120 * 24 * 60)),
            rng.randrange(0, 12),
        )


CONTACT_COLUMNS = (
    "id",
    "user_id",
    "email",
    "traits",
    "lifecycle_stage",
    "subscription_status",
    "consent",
    "created_at",
    "updated_at",
    "last_seen_at",
    "sessions",
)


def events(count: int, people: int, seed: int = 11) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    names = rng.choices(EVENTS, weights=WEIGHTS, k=count)
    for n in range(count):
        name = names[n]
        properties: dict[str, Any] = {"course": f"c-{n % 40}", "value": n % 97}
        if name.startswith("leadflow.email_"):
            properties = {
                "journey_id": rng.choice(JOURNEYS),
                "message_id": f"m{n % 1000}",
                "machine_generated": rng.random() < 0.1,
            }
        at = NOW - timedelta(seconds=rng.randrange(0, 120 * 86400))
        yield (
            f"e{n}",
            "track",
            name,
            contact_id(rng.randrange(people)),
            orjson.dumps(properties).decode(),
            at,
            at,
            at,
            "segment",
        )


EVENT_COLUMNS = (
    "message_id",
    "type",
    "event",
    "contact_id",
    "properties",
    "timestamp",
    "received_at",
    "processed_at",
    "source",
)
EVENT_INDEXES = (
    "ix_events_contact_id_timestamp",
    "ix_events_event_timestamp",
    "ix_events_pending",
    "ix_events_failed",
    "uq_events_message_id",
)


def _say(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


def load(db: Database, people: int, count: int) -> None:
    started = time.perf_counter()
    if db.is_sqlite:
        _load_sqlite(db, people, count)
    else:
        _load_postgres(db, people, count)
    _say(f"loaded {people:,} contacts and {count:,} events in {time.perf_counter() - started:.0f} s")


def _load_postgres(db: Database, people: int, count: int) -> None:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY contacts ({', '.join(CONTACT_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in contacts(people):
                copy.write_row(row)
        cursor.execute("ALTER TABLE events DROP CONSTRAINT uq_events_message_id")
        for index in EVENT_INDEXES[:-1]:
            cursor.execute(f"DROP INDEX {index}")
        with cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in events(count, people):
                copy.write_row(row)
        cursor.execute("ALTER TABLE events ADD CONSTRAINT uq_events_message_id UNIQUE (message_id)")
        cursor.execute("CREATE INDEX ix_events_contact_id_timestamp ON events (contact_id, timestamp)")
        cursor.execute("CREATE INDEX ix_events_event_timestamp ON events (event, timestamp)")
        cursor.execute("CREATE INDEX ix_events_pending ON events (id) WHERE processed_at IS NULL")
        cursor.execute("CREATE INDEX ix_events_failed ON events (id) WHERE error IS NOT NULL")
        raw.commit()
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor.execute("VACUUM ANALYZE contacts")
        cursor.execute("VACUUM ANALYZE events")
    finally:
        raw.close()


def _sqlite_time(value: datetime) -> str:
    return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _load_sqlite(db: Database, people: int, count: int) -> None:
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.execute("BEGIN")
        rows = ((*r[:7], *(_sqlite_time(v) for v in r[7:10]), r[10]) for r in contacts(people))
        cursor.executemany(
            f"INSERT INTO contacts ({', '.join(CONTACT_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(CONTACT_COLUMNS))})",
            rows,
        )
        for index in EVENT_INDEXES[:-1]:
            cursor.execute(f"DROP INDEX {index}")
        rows = ((*r[:5], *(_sqlite_time(v) for v in r[5:8]), r[8]) for r in events(count, people))
        cursor.executemany(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})",
            rows,
        )
        cursor.execute("CREATE INDEX ix_events_contact_id_timestamp ON events (contact_id, timestamp)")
        cursor.execute("CREATE INDEX ix_events_event_timestamp ON events (event, timestamp)")
        cursor.execute("CREATE INDEX ix_events_pending ON events (id) WHERE processed_at IS NULL")
        cursor.execute("CREATE INDEX ix_events_failed ON events (id) WHERE error IS NOT NULL")
        cursor.execute("COMMIT")
        cursor.execute("ANALYZE")
    finally:
        raw.close()


def counts(db: Database) -> tuple[int, int]:
    with db.read() as conn:
        people = conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
        found = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
    return int(people), int(found)
