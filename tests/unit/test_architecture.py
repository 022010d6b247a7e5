"""Every import of a leadflow module sits at the top of its module, where import-linter sees it.

An import inside a function or method hides a dependency from ``lint-imports`` (and usually a cycle it
would refuse). ``if TYPE_CHECKING:`` blocks at module level are fine: they are module-level imports.
Imports by name (``importlib.import_module``) are allowed in two places only: ``leadflow.cli`` loads the
HTTP server for ``leadflow serve`` alone, so that every other command starts without FastAPI and the
routers (cli is the top layer: it hides no cycle), and ``leadflow.tables`` loads every domain's models
to describe the whole schema.
"""

from __future__ import annotations

import ast
from pathlib import Path

import leadflow

SRC = Path(leadflow.__file__).parent
DYNAMIC = {("cli.py", "HTTP_SERVER"), ("tables.py", "module")}
"""(module, what it passes) of the allowed ``importlib.import_module`` calls."""


def _is_leadflow(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "leadflow"
    return any(alias.name.split(".")[0] == "leadflow" for alias in node.names)


def _function_body_imports(tree: ast.Module) -> list[str]:
    found = []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Import | ast.ImportFrom) and _is_leadflow(node):
                found.append(f"l.{node.lineno}: {ast.unparse(node)}")
    return found


def _imports_by_name(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ("importlib.import_module", "import_module", "__import__") and node.args:
            found.append((node.lineno, ast.unparse(node.args[0])))
    return found


def _modules() -> list[tuple[str, ast.Module]]:
    return [
        (path.relative_to(SRC).as_posix(), ast.parse(path.read_text("utf-8"), str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if "migrations" not in path.relative_to(SRC).parts
    ]


def test_no_leadflow_import_inside_a_function() -> None:
    offenders = [
        f"src/leadflow/{name} {line}" for name, tree in _modules() for line in _function_body_imports(tree)
    ]
    assert offenders == [], "move these imports to the top of their module:\n" + "\n".join(offenders)


def test_modules_are_imported_by_name_only_where_allowed() -> None:
    offenders = [
        f"src/leadflow/{name} l.{line}: {argument}"
        for name, tree in _modules()
        for line, argument in _imports_by_name(tree)
        if (name, argument) not in DYNAMIC
    ]
    assert offenders == [], "import these modules with an import statement:\n" + "\n".join(offenders)


def test_the_check_sees_imports_in_functions_and_methods() -> None:
    tree = ast.parse(
        "import typing\n"
        "if typing.TYPE_CHECKING:\n    from leadflow.kernel import db\n"
        "def f():\n    from leadflow.kernel import clock\n"
        "class C:\n    async def g(self):\n        import leadflow.kernel.ids\n        import json\n"
    )
    assert _function_body_imports(tree) == [
        "l.5: from leadflow.kernel import clock",
        "l.8: import leadflow.kernel.ids",
    ]
