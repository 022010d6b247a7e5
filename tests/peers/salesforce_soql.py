"""Enough SOQL for the Salesforce peer: ``SELECT f, ... FROM Obj [WHERE ...] [ORDER BY f [ASC|DESC]]
[LIMIT n]``, with ``AND``/``OR``/``NOT``/parentheses, ``= != <> < <= > >= IN NOT IN LIKE``, string, number,
date/datetime, ``true``/``false``/``null`` literals and ``COUNT()``. Text compares case-insensitively, as
Salesforce does. Errors raise :class:`SoqlError` (the peer answers ``400 MALFORMED_QUERY``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


class SoqlError(ValueError):
    pass


@dataclass
class Query:
    obj: str
    fields: list[str]  # empty for COUNT()
    count: bool
    where: Callable[[dict[str, Any]], bool]
    order: list[tuple[str, bool]]  # (field, descending)
    limit: int | None


def parse_time(value: Any) -> datetime | None:
    """A Salesforce datetime (``2026-01-01T00:00:00.000+0000``) or ISO one, as an aware datetime."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def field_value(record: dict[str, Any], name: str) -> Any:
    """A field's value, its name matched case-insensitively (as SOQL does)."""
    lowered = name.lower()
    for key, value in record.items():
        if key.lower() == lowered:
            return value
    return None


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(right, datetime):
        return parse_time(left), right
    if isinstance(right, date):
        return (date.fromisoformat(left[:10]) if isinstance(left, str) else left), right
    if isinstance(right, str) and isinstance(left, str):
        return left.lower(), right.lower()
    return left, right


def _compare(op: str, left: Any, right: Any) -> bool:
    if right is None or left is None:
        if op == "=":
            return left is None and right is None
        if op in ("!=", "<>"):
            return (left is None) != (right is None)
        return False
    left, right = _comparable(left, right)
    if left is None:
        return False
    try:
        if op == "=":
            return bool(left == right)
        if op in ("!=", "<>"):
            return bool(left != right)
        if op == "<":
            return bool(left < right)
        if op == "<=":
            return bool(left <= right)
        if op == ">":
            return bool(left > right)
        if op == ">=":
            return bool(left >= right)
    except TypeError:
        return False
    raise SoqlError(f"unknown operator {op}")


def _like(value: Any, pattern: str) -> bool:
    if not isinstance(value, str):
        return False
    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE | re.DOTALL) is not None


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            match = TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise SoqlError(f"unexpected token at: {text[pos : pos + 20]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            pos = match.end()
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self) -> tuple[str, str]:
        token = self.peek()
        self.i += 1
        return token

    def keyword(self, *words: str) -> bool:
        kind, value = self.peek()
        following = all(
            self.peek(n)[0] == "word" and self.peek(n)[1].upper() == w for n, w in enumerate(words)
        )
        if kind == "word" and value.upper() == words[0] and following:
            self.i += len(words)
            return True
        return False

    def expect(self, value: str) -> None:
        _, got = self.take()
        if got.upper() != value:
            raise SoqlError(f"expecting {value!r}, unexpected token: {got!r}")

    def word(self) -> str:
        kind, value = self.take()
        if kind != "word":
            raise SoqlError(f"unexpected token: {value!r}")
        return value

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return re.sub(r"\\(.)", r"\1", value[1:-1])
        if kind == "datetime":
            return parse_time(value)
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "word" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "word" and value.lower() == "null":
            return None
        raise SoqlError(f"unexpected token: {value!r}")

    def query(self) -> Query:
        self.expect("SELECT")
        fields: list[str] = []
        count = False
        if self.peek()[1].upper() == "COUNT" and self.peek(1)[1] == "(":
            self.i += 2
            self.expect(")")
            count = True
        else:
            fields.append(self.word())
            while self.peek()[1] == ",":
                self.i += 1
                fields.append(self.word())
        self.expect("FROM")
        obj = self.word()
        where: Callable[[dict[str, Any]], bool] = lambda record: True  # noqa: E731
        if self.keyword("WHERE"):
            where = self.disjunction()
        order: list[tuple[str, bool]] = []
        if self.keyword("ORDER", "BY"):
            while True:
                name = self.word()
                descending = False
                if self.keyword("DESC"):
                    descending = True
                else:
                    self.keyword("ASC")
                order.append((name, descending))
                if self.peek()[1] != ",":
                    break
                self.i += 1
        limit = None
        if self.keyword("LIMIT"):
            value = self.literal()
            if not isinstance(value, int):
                raise SoqlError("LIMIT needs an integer")
            limit = value
        if self.peek()[0] != "end":
            raise SoqlError(f"unexpected token: {self.peek()[1]!r}")
        return Query(obj, fields, count, where, order, limit)

    def disjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.conjunction()]
        while self.keyword("OR"):
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else (lambda record: any(p(record) for p in parts))

    def conjunction(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self.condition()]
        while self.keyword("AND"):
            parts.append(self.condition())
        return parts[0] if len(parts) == 1 else (lambda record: all(p(record) for p in parts))

    def condition(self) -> Callable[[dict[str, Any]], bool]:
        if self.keyword("NOT"):
            inner = self.condition()
            return lambda record: not inner(record)
        if self.peek()[1] == "(":
            self.i += 1
            inner = self.disjunction()
            self.expect(")")
            return inner
        name = self.word()
        negated = self.keyword("NOT")
        if self.keyword("IN"):
            self.expect("(")
            values = [self.literal()]
            while self.peek()[1] == ",":
                self.i += 1
                values.append(self.literal())
            self.expect(")")
            return lambda record: negated != any(_compare("=", field_value(record, name), v) for v in values)
        if negated:
            raise SoqlError("NOT must come before IN")
        if self.keyword("LIKE"):
            pattern = self.literal()
            return lambda record: _like(field_value(record, name), str(pattern))
        kind, op = self.take()
        if kind != "op" or op in ("(", ")", ","):
            raise SoqlError(f"unexpected token: {op!r}")
        value = self.literal()
        return lambda record: _compare(op, field_value(record, name), value)


def parse(text: str) -> Query:
    return _Parser(text).query()


def sort_key(value: Any) -> tuple[int, Any]:
    """Nulls first, then by value (datetimes parsed, text case-insensitive)."""
    if value is None:
        return (0, "")
    moment = parse_time(value) if isinstance(value, str) and re.match(r"\d{4}-\d{2}-\d{2}T", value) else None
    if moment is not None:
        return (1, moment.timestamp())
    if isinstance(value, str):
        return (2, value.lower())
    if isinstance(value, bool | int | float):
        return (1, float(value))
    return (3, str(value))
