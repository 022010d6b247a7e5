"""SQL lives in one visible place per package, and every statement there compiles.

Three checks over ``src/leadflow`` (issue 12, "SQL in one visible place per package"):

1. Calls that build SQL (``select``, ``insert``, ``update``, ``delete``, ``text``, ``union_all``,
   ``exists``, ``values``, ``exec_driver_sql``, the dialect inserts, a table's ``insert()`` /
   ``update()`` / ``delete()`` / ``select()``, and the kernel/db helpers that return statements) appear
   only in a package's ``queries.py`` or ``store.py`` (or the modules of a ``queries/`` package, when one
   domain's statements outgrow a module: its ``__init__.py`` only re-exports them), in ``models.py``
   (tables, index predicates) and in the few modules whose job is SQL (:data:`SQL_MODULES`).
2. No SQL assembled with f-strings, ``%`` or ``.format`` is handed to ``text()`` /
   ``exec_driver_sql()`` (or a driver's ``execute()``) outside :data:`FORMATTED_SQL_MODULES`
   (identifiers quoted by the dialect).
3. "At start-up": every ``queries.py`` / ``store.py`` (and every module of a ``queries/`` package)
   imports, and every module-level statement and
   every statement its ``SAMPLES`` build compiles on SQLite and on PostgreSQL, so a broken query fails
   here rather than on the first request that runs it. A statement built by a function is reached
   through the module's ``SAMPLES: list[leadflow.kernel.db.Sample]``, zero-argument callables that
   build it with made-up arguments:
   ``SAMPLES = [lambda: claim_due(datetime(2026, 1, 1, tzinfo=UTC), 10)]``. A dialect's own construct
   (``postgresql.insert(...)``, ``sqlite.insert(...)``) compiles on its dialect only: give a builder that
   takes the dialect one sample per dialect.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.expression import Executable

import leadflow

SRC = Path(leadflow.__file__).resolve().parent

#: Modules (relative to ``src/leadflow``) whose job is building SQL, besides queries.py, store.py,
#: models.py and the migrations.
SQL_MODULES = {
    "kernel/db.py",  # the SQL toolkit: engine, bulk helpers, dialect differences
    "segments/compiler.py",  # the rule compiler is an SQL builder
    "segments/values.py",
    "kernel/queue_upkeep.py",  # maintenance commands: VACUUM and ANALYZE of the queue tables
}

#: Modules that may hand ``text()`` / ``exec_driver_sql()`` a formatted string (identifiers quoted by
#: the dialect, never values).
FORMATTED_SQL_MODULES = {
    "kernel/db.py",
    "kernel/queue_upkeep.py",
}

#: Modules that still build SQL outside their package's queries.py (issue 12 in progress). Each domain
#: removes its entries as it moves its statements; THE FINAL LIST MUST BE EMPTY.
NOT_YET_CONVERTED: set[str] = set()

#: Formatted SQL not yet rewritten (issue 12 in progress). THE FINAL LIST MUST BE EMPTY.
FORMATTED_NOT_YET_CONVERTED: set[str] = set()

#: queries modules whose statements are still built inside functions that need a Connection, with no
#: SAMPLES yet (issue 12 in progress). THE FINAL LIST MUST BE EMPTY.
SAMPLES_NOT_YET_WRITTEN: set[str] = set()

_SQLALCHEMY_BUILDERS = {
    "select",
    "insert",
    "update",
    "delete",
    "text",
    "union",
    "union_all",
    "exists",
    "values",
    "literal_column",
}
_TABLE_METHODS = {"select", "insert", "update", "delete"}
_KERNEL_BUILDERS = {"insert_ignore", "dialect_insert", "where_in", "where_in_dialect"}
_RAW_SQL_FUNCTIONS = {"text", "exec_driver_sql"}


def _relative(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


def _sources() -> Iterator[Path]:
    yield from sorted(SRC.rglob("*.py"))


def _in_queries_package(relative: str) -> bool:
    """A module of a ``queries/`` package (``crm/queries/deals.py``), not its ``__init__.py``."""
    folder, _, name = relative.rpartition("/")
    return folder.rsplit("/", 1)[-1] == "queries" and name != "__init__.py"


def _may_build_sql(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return (
        name in {"queries.py", "store.py", "models.py"}
        or _in_queries_package(relative)
        or relative in SQL_MODULES
        or relative.startswith("migrations/")
    )


def _imports(tree: ast.Module) -> dict[str, str]:
    """Local name → dotted name it stands for, from the module's imports (any depth)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _dotted(node: ast.expr, imports: dict[str, str]) -> str | None:
    """The dotted name an expression like ``sa.select`` or ``postgresql.insert`` resolves to."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    base = imports.get(node.id)
    if base is None:
        return None
    return ".".join([base, *reversed(parts)])


def _builds_sql(call: ast.Call, imports: dict[str, str]) -> str | None:
    """What SQL-building call ``call`` is, or None."""
    func = call.func
    dotted = _dotted(func, imports)
    if dotted is not None:
        module, _, name = dotted.rpartition(".")
        if module.startswith("sqlalchemy") and name in _SQLALCHEMY_BUILDERS:
            return dotted
        if module == "leadflow.kernel.db" and name in _KERNEL_BUILDERS:
            return dotted
    if isinstance(func, ast.Attribute):
        if func.attr == "exec_driver_sql":
            return "exec_driver_sql"
        if func.attr in _TABLE_METHODS and not call.args and not call.keywords:
            return f"<table>.{func.attr}()"
    return None


def _is_raw_sql_call(call: ast.Call, imports: dict[str, str]) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in {"exec_driver_sql", "execute"}:
        return True  # execute: a DB-API cursor or a driver connection (LISTEN/NOTIFY)
    dotted = _dotted(func, imports)
    return dotted is not None and dotted.startswith("sqlalchemy") and dotted.endswith(".text")


def _is_formatted(node: ast.expr) -> bool:
    """An f-string, ``"..." % x``, ``"...".format(...)`` or a concatenation holding one."""
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Mod):
            return True
        return _is_formatted(node.left) or _is_formatted(node.right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        target = node.func.value  # "...".format(...), ", ".join(...)
        return node.func.attr in {"format", "join"} and isinstance(target, ast.Constant)
    return False


def _parse(path: Path) -> tuple[ast.Module, dict[str, str]]:
    try:
        source = path.read_text(encoding="utf-8")
    except FileNotFoundError:  # moved away while the tree was walked
        source = ""
    tree = ast.parse(source, filename=str(path))
    return tree, _imports(tree)


def sql_outside_queries() -> dict[str, list[str]]:
    """Module → the SQL-building calls it makes (``line: call``), for modules not allowed to."""
    found: dict[str, list[str]] = {}
    for path in _sources():
        relative = _relative(path)
        if _may_build_sql(relative):
            continue
        tree, imports = _parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (what := _builds_sql(node, imports)):
                found.setdefault(relative, []).append(f"{node.lineno}: {what}")
    return found


def formatted_sql() -> dict[str, list[str]]:
    """Module → lines where a formatted string is handed to ``text()`` / ``exec_driver_sql()``."""
    found: dict[str, list[str]] = {}
    for path in _sources():
        relative = _relative(path)
        if relative in FORMATTED_SQL_MODULES:
            continue
        tree, imports = _parse(path)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and _is_raw_sql_call(node, imports)
                and node.args
                and _is_formatted(node.args[0])
            ):
                found.setdefault(relative, []).append(str(node.lineno))
    return found


def test_sql_is_built_only_in_queries_modules() -> None:
    found = sql_outside_queries()
    misplaced = {module: calls for module, calls in found.items() if module not in NOT_YET_CONVERTED}
    assert not misplaced, (
        "SQL built outside the package's queries.py (move the statements there): "
        + "; ".join(f"{module} ({', '.join(calls)})" for module, calls in sorted(misplaced.items()))
    )
    converted = sorted(NOT_YET_CONVERTED - set(found))
    assert not converted, f"no SQL left in {converted}: remove them from NOT_YET_CONVERTED"


def test_no_formatted_sql() -> None:
    found = formatted_sql()
    formatted = {
        module: lines for module, lines in found.items() if module not in FORMATTED_NOT_YET_CONVERTED
    }
    assert not formatted, (
        "SQL assembled with f-strings/%/format (bind values; quote identifiers through the dialect): "
        + "; ".join(f"{module} (lines {', '.join(lines)})" for module, lines in sorted(formatted.items()))
    )
    rewritten = sorted(FORMATTED_NOT_YET_CONVERTED - set(found))
    assert not rewritten, (
        f"no formatted SQL left in {rewritten}: remove them from FORMATTED_NOT_YET_CONVERTED"
    )


def test_the_allowlists_name_real_modules() -> None:
    for relative in NOT_YET_CONVERTED | FORMATTED_NOT_YET_CONVERTED:
        assert (SRC / relative).is_file(), f"{relative} does not exist: remove it from the allowlist"


# --- the compile test -------------------------------------------------------------------------------

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),  # type: ignore[no-untyped-call]
}


def _query_modules() -> list[str]:
    return sorted(
        "leadflow." + _relative(path)[: -len(".py")].replace("/", ".")
        for path in _sources()
        if path.name in {"queries.py", "store.py"} or _in_queries_package(_relative(path))
    )


def _statements(value: object) -> list[Executable]:
    if isinstance(value, Executable):
        return [value]
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [item for element in value for item in _statements(element)]
    raise TypeError(f"a sample returned {type(value).__name__}, not a statement or a sequence of them")


def module_statements(module_name: str) -> list[tuple[str, Executable]]:
    """``(where, statement)`` for the module's statements: its module-level ones and its SAMPLES'."""
    module = importlib.import_module(module_name)
    found: list[tuple[str, Executable]] = [
        (name, value) for name, value in vars(module).items() if isinstance(value, Executable)
    ]
    for index, sample in enumerate(getattr(module, "SAMPLES", ())):
        for position, statement in enumerate(_statements(sample())):
            found.append((f"SAMPLES[{index}] #{position}", statement))
    return found


def _dialects_of(statement: Executable) -> dict[str, Dialect]:
    """Both dialects, or the one a dialect's own construct (``postgresql.insert(...)``) was built for."""
    module = type(statement).__module__
    own = {
        name: dialect
        for name, dialect in DIALECTS.items()
        if module.startswith(f"sqlalchemy.dialects.{name}.")
    }
    return own or DIALECTS


@pytest.mark.parametrize("module_name", _query_modules())
def test_every_statement_compiles_on_both_databases(module_name: str) -> None:
    statements = module_statements(module_name)
    if module_name in SAMPLES_NOT_YET_WRITTEN:
        assert not statements, f"{module_name} has statements now: remove it from SAMPLES_NOT_YET_WRITTEN"
    elif module_name.endswith(".queries") or ".queries." in module_name:
        assert statements, f"{module_name} has no module-level statement and no SAMPLES: nothing is checked"
    for where, statement in statements:
        for dialect_name, dialect in _dialects_of(statement).items():
            try:
                element = cast(ClauseElement, statement)
                element.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
            except Exception as error:  # reported with the statement that failed
                pytest.fail(f"{module_name} {where} does not compile on {dialect_name}: {error!r}")
