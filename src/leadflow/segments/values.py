"""Typed views of one field inside SQL, the same on SQLite and PostgreSQL.

A field is a column or a JSON path. Each view answers NULL when the value is not of that type, so a
condition on a string never matches a number (``"5"`` is not ``5``) and a missing field is never
"equal" to anything. Text comparisons fold ASCII case on both sides (SQLite's ``lower`` folds only
ASCII; PostgreSQL's ``lower`` under the ``C`` collation folds exactly the same characters).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from leadflow.kernel import isodates
from leadflow.kernel.types import UTCDateTime

Expr = sa.ColumnElement[Any]
Moment = Callable[[datetime], Any]
Binder = Callable[[Moment, Any], Expr]


def compare(left: Expr, op: str, right: Any) -> Expr:
    """``left op right`` for op in ``<``, ``<=``, ``>``, ``>=``."""
    operators = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
    result: Expr = operators[op](left, right)
    return result


def fold_sql(dialect: str, expr: Expr) -> Expr:
    """ASCII case folding in SQL: SQLite's ``lower``; PostgreSQL's ``lower`` under the C collation, which
    folds exactly the ASCII letters (and is faster than locale-aware folding)."""
    if dialect == "postgresql":
        return sa.func.lower(expr.collate("C"))
    return sa.func.lower(expr)


@dataclass(frozen=True)
class Column:
    """A plain column: ``kind`` says what it holds."""

    dialect: str
    expr: Expr
    kind: str

    def present(self) -> Expr:
        return self.expr.is_not(None)

    def text(self) -> Expr | None:
        return self.expr if self.kind in ("text", "stage") else None

    def raw_text(self) -> Expr | None:
        """The value as text when the column holds text (no type guard is needed)."""
        return self.text()

    def string_guard(self) -> Expr | None:
        return None

    def number(self) -> Expr | None:
        return self.expr if self.kind == "number" else None

    def boolean(self) -> Expr | None:
        return None

    def instant_compare(self, op: str, moment: Moment, bind: Binder) -> Expr | None:
        if self.kind != "datetime":
            return None
        return compare(self.expr, op, bind(moment, UTCDateTime()))

    def month_day(self) -> Expr | None:
        if self.kind != "datetime":
            return None
        if self.dialect == "postgresql":
            return sa.func.to_char(sa.func.timezone("UTC", self.expr), "MM-DD")
        return sa.func.strftime("%m-%d", self.expr)


@dataclass(frozen=True)
class JsonPath:
    """A value inside a JSON column, at a path of keys (bound, never spliced into SQL)."""

    dialect: str
    column: Expr
    keys: tuple[str, ...]

    def _pg_node(self) -> Expr:
        if len(self.keys) == 1:
            return self.column.op("->")(sa.bindparam(None, self.keys[0], type_=sa.Text))
        return self.column.op("#>")(sa.bindparam(None, list(self.keys), type_=postgresql.ARRAY(sa.Text)))

    def _pg_text(self) -> Expr:
        if len(self.keys) == 1:
            return self.column.op("->>", return_type=sa.Text)(sa.bindparam(None, self.keys[0], type_=sa.Text))
        path = sa.bindparam(None, list(self.keys), type_=postgresql.ARRAY(sa.Text))
        return self.column.op("#>>", return_type=sa.Text)(path)

    def _sqlite_path(self) -> Expr:
        return sa.bindparam(None, "$" + "".join(f'."{key}"' for key in self.keys), type_=sa.String())

    def _type(self) -> Expr:
        if self.dialect == "postgresql":
            return sa.func.jsonb_typeof(self._pg_node())
        return sa.func.json_type(self.column, self._sqlite_path())

    def _raw(self) -> Expr:
        if self.dialect == "postgresql":
            return self._pg_text()
        return sa.func.json_extract(self.column, self._sqlite_path())

    def present(self) -> Expr:
        return sa.and_(self._type().is_not(None), self._type() != "null")

    def text(self) -> Expr:
        string = "string" if self.dialect == "postgresql" else "text"
        return sa.case((self._type() == string, self._raw()), else_=sa.null())

    def raw_text(self) -> Expr:
        """The value as text whatever its JSON type: pair a condition on it with :meth:`string_guard`
        (the cheap comparison first, the type check only for the rows that pass it)."""
        return self._raw()

    def string_guard(self) -> Expr:
        return self._type() == ("string" if self.dialect == "postgresql" else "text")

    def number(self) -> Expr:
        if self.dialect == "postgresql":
            value = sa.cast(self._pg_text(), sa.Float)
            return sa.case((self._type() == "number", value), else_=sa.null())
        return sa.case((self._type().in_(["integer", "real"]), self._raw()), else_=sa.null())

    def boolean(self) -> Expr:
        """1 for true, 0 for false, NULL otherwise."""
        if self.dialect == "postgresql":
            truth = sa.case((self._pg_text() == "true", 1), else_=0)
            return sa.case((self._type() == "boolean", truth), else_=sa.null())
        return sa.case((self._type() == "true", 1), (self._type() == "false", 0), else_=sa.null())

    def _instant(self) -> Expr:
        if self.dialect == "postgresql":
            return sa.func.leadflow_try_timestamptz(self.text())
        return sa.func.leadflow_julian(self.text())

    def instant_compare(self, op: str, moment: Moment, bind: Binder) -> Expr:
        if self.dialect == "postgresql":
            bound = bind(moment, sa.DateTime(timezone=True))
        else:
            bound = bind(lambda now: isodates.julian_of(moment(now)), sa.Float())
        return compare(self._instant(), op, bound)

    def month_day(self) -> Expr:
        return sa.case((self._instant().is_not(None), sa.func.substr(self.text(), 6, 5)), else_=sa.null())
