"""The database: one engine, explicit read and write transactions, and the few dialect differences.

SQLite runs in WAL mode with a single writer: every write transaction starts with ``BEGIN IMMEDIATE``
so two writers queue on the lock instead of failing mid-transaction. PostgreSQL runs in UTC with a
connection pool; cross-process mutual exclusion uses transaction-scoped advisory locks.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import Executable
from sqlalchemy.sql.functions import FunctionElement

from leadflow.kernel import isodates, jsonutil
from leadflow.kernel.errors import Invalid

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

#: One entry of a queries module's ``SAMPLES``: builds one statement (or several) with made-up
#: arguments, so ``tests/unit/test_sql_places.py`` compiles it on both databases without a connection.
Sample = Callable[[], Executable | Sequence[Executable]]

_WRITE = "leadflow_write"
_AFTER_COMMIT = "leadflow_after_commit"
_LOOP_TIMEOUT_SET = "leadflow_loop_timeout"
LOOP_STATEMENT_TIMEOUT_MS = 2000
"""The longest a read made in the event loop may run (PostgreSQL's ``statement_timeout`` on the loop's
connection): a stalled statement holds every request of the process, so it is cut off (``500``)."""
T = TypeVar("T")


def _sqlite_engine(url: str, echo: bool) -> Engine:
    engine = sa.create_engine(
        url,
        echo=echo,
        json_serializer=jsonutil.dumps,
        json_deserializer=jsonutil.loads,
        connect_args={"check_same_thread": False, "timeout": 60},
        pool_size=8,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        dbapi_connection.create_function("leadflow_julian", 1, isodates.julian, deterministic=True)
        cursor = dbapi_connection.cursor()
        _math_functions(dbapi_connection, cursor)
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            "busy_timeout=60000",
            "cache_size=-65536",
            "temp_store=MEMORY",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: str, echo: bool) -> Engine:
    return sa.create_engine(
        url,
        echo=echo,
        json_serializer=jsonutil.dumps,
        json_deserializer=jsonutil.loads,
        connect_args={"options": "-c timezone=UTC"},
        # A server process runs up to 40 requests at once (anyio's thread pool). Connections past the
        # pool's size are opened for one request and closed after it: under a burst that churn (a new
        # PostgreSQL backend per request) cost more than the reads themselves, so keep 20.
        pool_size=20,
        max_overflow=20,
        pool_recycle=1800,
    )


class Database:
    """Owns the engine. Use :meth:`read` for queries and :meth:`write` for anything that changes rows."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.engine = _sqlite_engine(url, echo)
        else:
            self.engine = _postgres_engine(url, echo)
        self.dialect = self.engine.dialect.name
        # PostgreSQL: the same pool, each connection in autocommit while it is checked out (see ``read_one``)
        self._single = (
            self.engine if self.is_sqlite else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._loop_conn: Connection | None = None
        self._loop_lock = threading.Lock()

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read_one(self) -> Iterator[Connection]:
        """A connection for a read made of **one statement** (a statement is its own snapshot).

        On PostgreSQL it runs outside a transaction: no ``BEGIN`` and ``COMMIT`` round trips, one round
        trip for the read (the API's hot reads: a contact by id or email). A read of several statements
        that must agree with each other, or that sets ``SET LOCAL``-scoped settings, uses :meth:`read`."""
        with self._single.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def read_in_loop(self) -> Iterator[Connection | None]:
        """A connection for a one-statement read made in the event loop itself, or ``None``: then read
        in a worker thread (:meth:`read_one`).

        Under load a read handed to a worker thread waits for the GIL twice (there and back) behind the
        loop and the other threads: at 500 reads/s on two cores that hand-off, not the read, made most
        of a contact look-up's latency (docs/benchmarks.md, "API read path"). A look-up by a unique key
        is a fraction of a millisecond in PostgreSQL, less than the hand-off, so the API's hot reads
        (:mod:`leadflow.kernel.hot_reads`) make it in the loop. On PostgreSQL the process keeps one
        connection of the pool for that, in ``AUTOCOMMIT``, with a ``statement_timeout`` of
        :data:`LOOP_STATEMENT_TIMEOUT_MS` so a stalled statement cannot hold the loop longer. One
        caller uses it at a time: while it is in use (another thread's loop), and on SQLite (whose reads
        may wait for a writer's lock), the answer is ``None``."""
        if self.is_sqlite or not self._loop_lock.acquire(blocking=False):
            yield None
            return
        try:
            conn = self._loop_conn
            if conn is None or conn.closed:
                conn = self._loop_conn = self._single.connect()
            kept = conn.connection  # an invalidated connection (the server went away) is replaced here
            with conn.begin():
                if not kept.info.get(_LOOP_TIMEOUT_SET):
                    conn.exec_driver_sql(f"SET statement_timeout = {LOOP_STATEMENT_TIMEOUT_MS}")
                    kept.info[_LOOP_TIMEOUT_SET] = True
                yield conn
        finally:
            self._loop_lock.release()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; callbacks registered with :func:`on_commit` run after it commits."""
        with self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            conn.info.pop(_AFTER_COMMIT, None)
            with conn.begin():
                yield conn
            for callback in conn.info.pop(_AFTER_COMMIT, ()):
                callback()

    def dispose(self) -> None:
        with self._loop_lock:
            if self._loop_conn is not None:
                self._loop_conn.close()
                self._loop_conn = None
        self.engine.dispose()


def on_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the write transaction ``conn`` belongs to has committed (wake-ups: a
    worker woken before the commit would find nothing). Registered twice, it still runs once."""
    callbacks: list[Callable[[], None]] = conn.info.setdefault(_AFTER_COMMIT, [])
    if callback not in callbacks:
        callbacks.append(callback)


def insert_for(dialect: str, table: sa.Table) -> Any:
    """The ``insert`` construct of the dialect named ``dialect`` (it has ``on_conflict_do_nothing`` and
    ``on_conflict_do_update``): a queries module builds the statement without a connection."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def insert_ignore(conn: Connection, table: sa.Table, index_elements: Sequence[str]) -> Any:
    """``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for the connection's dialect."""
    return insert_for(conn.dialect.name, table).on_conflict_do_nothing(index_elements=list(index_elements))


def analyze(conn: Connection, table: sa.Table) -> None:
    """Refresh PostgreSQL's planner statistics for ``table`` after a bulk write.

    Autovacuum analyses a table only a while after it grew; until then the planner believes the old row
    counts. A claim query (``ORDER BY due_at LIMIT n``) over a million freshly written rows then sorts all
    of them (0.4 s a batch) instead of reading the first n from the index (2 ms). SQLite needs nothing.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {conn.dialect.identifier_preparer.quote(table.name)}")


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's ``insert`` construct, for ``on_conflict_do_update``."""
    return insert_for(conn.dialect.name, table)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for an advisory lock name."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


def advisory_lock(conn: Connection, name: str, *, wait: bool = True) -> bool:
    """Take a transaction-scoped lock named ``name``; returns False when ``wait`` is off and it is held.

    On SQLite a write transaction already holds the database's single write lock, so this is a no-op.
    """
    if conn.dialect.name != "postgresql":
        return True
    if wait:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})
        return True
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)}).scalar())


class json_flags(FunctionElement[Any]):  # noqa: N801 - used like sa.func.*
    """``json_flags(key, flag)``: an aggregate, the group's rows as one JSON object of booleans
    (``{"news": true, ...}``; ``NULL`` over no rows) — PostgreSQL's ``json_object_agg``, SQLite's
    ``json_group_object`` (whose booleans would otherwise be the integers 0 and 1)."""

    type = sa.JSON()
    name = "json_flags"
    inherit_cache = True


@compiles(json_flags)
def _json_flags(element: json_flags, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_object_agg({compiler.process(element.clause_expr, **kw)[1:-1]})"


@compiles(json_flags, "sqlite")
def _json_flags_sqlite(element: json_flags, compiler: SQLCompiler, **kw: Any) -> str:
    key, flag = (compiler.process(clause, **kw) for clause in element.clauses)
    return f"json_group_object({key}, json(CASE WHEN {flag} THEN 'true' ELSE 'false' END))"


def where_in(conn: Connection, query: Any, column: sa.ColumnElement[Any], values: Sequence[Any]) -> Any:
    """See :func:`where_in_dialect`."""
    return where_in_dialect(conn.dialect.name, query, column, values)


def where_in_dialect(
    dialect: str, query: Any, column: sa.ColumnElement[Any], values: Sequence[Any], *, key: str | None = None
) -> Any:
    """``query`` restricted to rows whose ``column`` is one of ``values``.

    On PostgreSQL the values travel as one array joined through ``unnest``: constant-size SQL that the
    server prepares once, and a join the planner can run by index or hash. (A long ``IN`` list of
    separate parameters costs milliseconds per hundred to bind; ``= ANY($1)`` in a generic plan degrades
    to comparing every row with every value.)
    """
    if dialect != "postgresql":
        if key is not None:
            return query.where(column.in_(sa.bindparam(key, list(values), expanding=True, unique=False)))
        return query.where(column.in_(list(values)))
    wanted = sa.func.unnest(sa.bindparam(key, list(values), type_=postgresql.ARRAY(column.type)))
    table = wanted.table_valued("value").render_derived(name="wanted")
    return query.join(table, column == table.c.value)


def _record_type(conn: Connection, table: sa.Table, names: Sequence[str]) -> str:
    """``name type, ...`` for ``json_to_recordset``, in the column types PostgreSQL stores."""
    dialect = conn.dialect
    return ", ".join(f"{name} {table.c[name].type.compile(dialect=dialect)}" for name in names)


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert many rows in one statement. On PostgreSQL the rows travel as one JSON document (serialised
    in C by orjson, expanded by ``json_to_recordset``); elsewhere an executemany."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), list(rows))
        return
    names = list(rows[0])
    columns = ", ".join(names)
    conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} "
        f"FROM json_to_recordset(%s::json) AS r({_record_type(conn, table, names)})",
        (jsonutil.dumps(rows),),
    )


def insert_new(
    conn: Connection,
    table: sa.Table,
    rows: Sequence[dict[str, Any]],
    *,
    conflict: Sequence[str] | None = None,
    returning: str | None = None,
) -> list[Any]:
    """Insert many rows, skipping those that conflict (on ``conflict``, or on any unique constraint
    when None); answers the ``returning`` column of the rows actually inserted.

    On PostgreSQL the rows travel as one JSON document through ``json_to_recordset``: one short
    statement whatever the batch size (a multi-row ``VALUES`` with thousands of parameters costs more
    to build and parse than to execute).
    """
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        statement = dialect_insert(conn, table).on_conflict_do_nothing(
            index_elements=list(conflict) if conflict else None
        )
        if returning is None:
            conn.execute(statement, list(rows))
            return []
        return list(conn.execute(statement.returning(table.c[returning]), list(rows)).scalars())
    names = list(rows[0])
    columns = ", ".join(names)
    target = f"({', '.join(conflict)}) " if conflict else ""
    tail = f" RETURNING {returning}" if returning else ""
    result = conn.exec_driver_sql(
        f"INSERT INTO {table.name} ({columns}) SELECT {columns} "
        f"FROM json_to_recordset(%s::json) AS r({_record_type(conn, table, names)}) "
        f"ON CONFLICT {target}DO NOTHING{tail}",
        (jsonutil.dumps(rows),),
    )
    return [row[0] for row in result] if returning else []


def bulk_update(conn: Connection, table: sa.Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
    """Set the given columns of many rows, each found by ``key``; one statement on PostgreSQL."""
    if not rows:
        return
    names = list(rows[0])
    changed = [name for name in names if name != key]
    if conn.dialect.name != "postgresql":
        statement = table.update().where(table.c[key] == sa.bindparam("b_key"))
        conn.execute(
            statement.values({name: sa.bindparam(f"b_{name}") for name in changed}),
            [{f"b_{name}" if name != key else "b_key": value for name, value in row.items()} for row in rows],
        )
        return
    assignments = ", ".join(f"{name} = r.{name}" for name in changed)
    conn.exec_driver_sql(
        f"UPDATE {table.name} SET {assignments} "
        f"FROM json_to_recordset(%s::json) AS r({_record_type(conn, table, names)}) "
        f"WHERE {table.name}.{key} = r.{key}",
        (jsonutil.dumps(rows),),
    )


def chunk_size(conn: Connection) -> int:
    """How many values one look-up may carry (SQLite limits bound variables per statement)."""
    return 50_000 if conn.dialect.name == "postgresql" else 5_000


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def copy_rows(
    source: Connection, target: Connection, table: sa.Table, where: sa.ColumnElement[bool] | None = None
) -> None:
    """Copy a table's rows (those meeting ``where``) from one database into the same table of another:
    one read, one executemany (the simulator's scratch copy of the configuration)."""
    query = sa.select(table) if where is None else sa.select(table).where(where)
    rows = [dict(row._mapping) for row in source.execute(query)]
    if rows:
        target.execute(table.insert(), rows)


def create_database(db: Database, name: str) -> None:
    """``CREATE DATABASE`` on the server of ``db`` (PostgreSQL), the name quoted by the dialect."""
    quoted = db.engine.dialect.identifier_preparer.quote_identifier(name)
    _autocommit(db, f"CREATE DATABASE {quoted}")


def drop_database(db: Database, name: str) -> None:
    """``DROP DATABASE IF EXISTS … WITH (FORCE)``: its sessions are ended first (PostgreSQL 13+)."""
    quoted = db.engine.dialect.identifier_preparer.quote_identifier(name)
    _autocommit(db, f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)")


def _autocommit(db: Database, statement: str) -> None:
    """``CREATE``/``DROP DATABASE`` cannot run inside a transaction."""
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(statement)


class TimeLimit(Invalid):
    """A statement ran past the time allowed by :func:`time_limit` (HTTP 422, ``time_limit``)."""

    code = "time_limit"


@contextmanager
def time_limit(conn: Connection, seconds: float, monotonic: Callable[[], float]) -> Iterator[None]:
    """Cancel the statements run in the block once ``seconds`` have passed, and raise :class:`TimeLimit`.

    PostgreSQL: ``statement_timeout`` for the rest of the transaction (each statement gets the whole
    allowance). SQLite: a progress handler that interrupts the running statement once ``monotonic``
    passes the deadline (the block's statements share the allowance). Used where a person waits on a
    query whose cost they decide (a segment rule's live preview)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT set_config('statement_timeout', :ms, true)"), {"ms": str(int(seconds * 1000))}
        )
        raw: Any = None
    else:
        raw = conn.connection.driver_connection
        deadline = monotonic() + seconds
        raw.set_progress_handler(lambda: 1 if monotonic() > deadline else 0, 20_000)
    try:
        yield
    except sa.exc.OperationalError as exc:
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate == "57014" or (raw is not None and "interrupted" in str(exc.orig)):
            raise TimeLimit(f"the query took longer than {seconds:g} s") from None
        raise
    finally:
        if raw is not None:
            raw.set_progress_handler(None, 0)


def _math_functions(dbapi_connection: Any, cursor: Any) -> None:
    """``ln`` and ``floor`` (the analytics rollups' gap histogram) where this SQLite was built without
    its math functions (``SQLITE_ENABLE_MATH_FUNCTIONS``, on in most builds since 3.35)."""
    try:
        cursor.execute("SELECT ln(1), floor(1.5)")
    except sqlite3.OperationalError:
        dbapi_connection.create_function("ln", 1, _ln, deterministic=True)
        dbapi_connection.create_function("floor", 1, _floor, deterministic=True)


def _ln(value: float | None) -> float | None:
    return math.log(value) if value is not None and value > 0 else None


def _floor(value: float | None) -> float | None:
    return float(math.floor(value)) if value is not None else None
