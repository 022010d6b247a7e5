"""The segment rule language: JSON trees validated with pydantic.

A rule is a group (``{"all": [...]}``, ``{"any": [...]}``, ``{"not": {...}}``) or a condition:

- attribute: ``{"field": "traits.plan", "op": "eq", "value": "pro"}``
- behaviour: ``{"event": "Course Previewed", "where": [...], "count": {"gte": 2}, "within": "30d"}``
  (or ``"page": "Pricing"``; ``"first"`` / ``"last"`` put a date condition on the first or last time)
- email engagement: ``{"email": "opened", "journey": "...", "within": "30d"}``
- membership: ``{"segment": "<id>"}`` (``"member": false`` for "not in")

Errors name the offending path, e.g. ``rules.all[1].not.op``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from leadflow.contacts import service as contacts
from leadflow.kernel import isodates as dates
from leadflow.kernel.errors import Invalid
from leadflow.kernel.inputs import INT32_MAX
from leadflow.segments import durations, fields

TEXT_OPS = frozenset({"eq", "neq", "contains", "not_contains", "starts_with", "ends_with", "in", "not_in"})
NUMBER_OPS = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "between", "in", "not_in"})
DATE_OPS = frozenset({"before", "after", "within_last", "more_than_ago", "anniversary_today"})
PRESENCE_OPS = frozenset({"is_set", "is_not_set"})
STRING_OPS = frozenset({"contains", "not_contains", "starts_with", "ends_with"})
ORDER_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
Op = Literal[
    "eq",
    "neq",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "in",
    "not_in",
    "is_set",
    "is_not_set",
    "before",
    "after",
    "within_last",
    "more_than_ago",
    "anniversary_today",
]
ALLOWED_BY_KIND: dict[str, frozenset[str]] = {
    "text": TEXT_OPS | PRESENCE_OPS,
    "number": NUMBER_OPS | PRESENCE_OPS,
    "datetime": DATE_OPS | PRESENCE_OPS,
    "stage": frozenset({"eq", "neq", "in", "not_in", "gt", "gte", "lt", "lte"}),
    "tags": frozenset({"contains", "not_contains", "in", "not_in"}) | PRESENCE_OPS,
    "json": TEXT_OPS | NUMBER_OPS | DATE_OPS | PRESENCE_OPS,
}
MAX_DEPTH = 64
MAX_LIST = 1000
EMAIL_EVENTS = {
    "received": "leadflow.email_sent",
    "opened": "leadflow.email_opened",
    "clicked": "leadflow.email_clicked",
}
Strict = ConfigDict(extra="forbid", frozen=True)
COUNT_OPS = ("eq", "gt", "gte", "lt", "lte", "between")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_value(op: str, value: Any) -> Any:
    """The value an operator needs, normalised (dates parsed, durations read)."""
    if op in PRESENCE_OPS or op == "anniversary_today":
        if value is not None:
            raise ValueError(f"'{op}' takes no value")
        return None
    if value is None:
        raise ValueError(f"'{op}' needs a value")
    if op in STRING_OPS:
        if not isinstance(value, str) or not value:
            raise ValueError(f"'{op}' needs a non-empty string")
        return value
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            raise ValueError(f"'{op}' needs a number")
        return value
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(_is_number(v) for v in value)):
            raise ValueError("'between' needs a list of two numbers [low, high]")
        if value[0] > value[1]:
            raise ValueError("'between' needs low <= high")
        return value
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or len(value) > MAX_LIST:
            raise ValueError(f"'{op}' needs a list of 1 to {MAX_LIST} values")
        if not all(isinstance(v, str | bool) or _is_number(v) for v in value):
            raise ValueError(f"'{op}' values must be strings, numbers or booleans")
        return value
    if op in ("before", "after"):
        if dates.parse(value) is None:
            raise ValueError(f"'{op}' needs an ISO-8601 date such as 2026-03-01 or 2026-03-01T09:00:00Z")
        return value
    if op in ("within_last", "more_than_ago"):
        durations.parse(value)
        return value
    if not (isinstance(value, str | bool) or _is_number(value)):
        raise ValueError(f"'{op}' needs a string, number or boolean")
    return value


def _check_kind(ref: fields.FieldRef, op: str, value: Any) -> None:
    allowed = ALLOWED_BY_KIND[ref.kind]
    if op not in allowed:
        raise ValueError(
            f"'{op}' does not apply to {ref.path} ({ref.kind}); use one of {', '.join(sorted(allowed))}"
        )
    values = value if op in ("in", "not_in") else [value] if op in ("eq", "neq") else []
    if ref.kind in ("text", "tags") and not all(isinstance(v, str) for v in values):
        raise ValueError(f"{ref.path} holds text: compare it with strings")
    if ref.kind == "number" and not all(_is_number(v) for v in values):
        raise ValueError(f"{ref.path} holds numbers: compare it with numbers")
    if ref.kind == "stage":
        # Stages are ordered (visitor < lead < mql < sql < customer < advocate): ``gt``/``gte``/``lt``/
        # ``lte`` compare a stage's rank, so their value is a stage name, never a number.
        wanted = value if isinstance(value, list) and op in ("in", "not_in") else [value]
        if op == "between" or not all(isinstance(v, str) and v in contacts.STAGES for v in wanted):
            raise ValueError(f"lifecycle_stage values are {', '.join(contacts.STAGES)}")


class _Comparison(BaseModel):
    model_config = Strict
    field: str
    op: Op
    value: Any = None
    _ref: fields.FieldRef = PrivateAttr()

    def _validate(self, ref: fields.FieldRef) -> None:
        if not (ref.kind == "stage" and self.op in ("gt", "gte", "lt", "lte")):
            _check_value(self.op, self.value)
        _check_kind(ref, self.op, self.value)
        self._ref = ref

    @property
    def ref(self) -> fields.FieldRef:
        return self._ref

    @property
    def duration(self) -> timedelta:
        return durations.parse(self.value)

    @property
    def moment(self) -> datetime:
        parsed = dates.parse(self.value)
        assert parsed is not None
        return parsed


class Attribute(_Comparison):
    """A condition on a contact field, trait, company field, score, stage, consent or tag."""

    @model_validator(mode="after")
    def _resolve(self) -> Attribute:
        self._validate(fields.resolve(self.field))
        return self


class Property(_Comparison):
    """A condition on an event property (inside a behaviour's ``where``)."""

    @model_validator(mode="after")
    def _resolve(self) -> Property:
        if self.op == "anniversary_today":
            raise ValueError("'anniversary_today' applies to contact fields, not event properties")
        self._validate(fields.resolve_property(self.field))
        return self


class Count(BaseModel):
    """How many times: exactly one of ``eq``, ``gt``, ``gte``, ``lt``, ``lte``, ``between``, each at most
    2,147,483,647 (the compiled statement binds it as a 32-bit integer)."""

    model_config = Strict
    eq: int | None = Field(default=None, ge=0, le=INT32_MAX)
    gt: int | None = Field(default=None, ge=0, le=INT32_MAX)
    gte: int | None = Field(default=None, ge=0, le=INT32_MAX)
    lt: int | None = Field(default=None, ge=1, le=INT32_MAX)
    lte: int | None = Field(default=None, ge=0, le=INT32_MAX)
    between: tuple[int, int] | None = None

    @model_validator(mode="after")
    def _one(self) -> Count:
        given = [
            name for name in ("eq", "gt", "gte", "lt", "lte", "between") if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError("give exactly one of eq, gt, gte, lt, lte, between")
        if self.between is not None and not 0 <= self.between[0] <= self.between[1] <= INT32_MAX:
            raise ValueError(f"'between' needs 0 <= low <= high <= {INT32_MAX}")
        return self

    @property
    def op(self) -> str:
        return next(n for n in COUNT_OPS if getattr(self, n) is not None)

    def holds(self, count: int) -> bool:
        """The count rule in plain Python (also decides how the SQL is shaped)."""
        value = getattr(self, self.op)
        checks = {
            "eq": lambda: count == value,
            "gt": lambda: count > value,
            "gte": lambda: count >= value,
            "lt": lambda: count < value,
            "lte": lambda: count <= value,
            "between": lambda: value[0] <= count <= value[1],
        }
        return bool(checks[self.op]())


AT_LEAST_ONCE = Count(gte=1)


class Total(BaseModel):
    """The sum of a numeric event property over the matching events (non-numbers count as 0):
    ``{"property": "revenue", "gt": 500}``; exactly one of eq, gt, gte, lt, lte, between."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    of: str = Field(alias="property", description="an event property path, e.g. revenue")
    eq: float | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    between: tuple[float, float] | None = None
    _ref: fields.FieldRef = PrivateAttr()

    @model_validator(mode="after")
    def _one(self) -> Total:
        given = [name for name in COUNT_OPS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of eq, gt, gte, lt, lte, between")
        if self.between is not None and self.between[0] > self.between[1]:
            raise ValueError("'between' needs low <= high")
        self._ref = fields.resolve_property(self.of)
        return self

    @property
    def op(self) -> str:
        return next(n for n in COUNT_OPS if getattr(self, n) is not None)

    @property
    def keys(self) -> tuple[str, ...]:
        return self._ref.keys

    def holds(self, total: float) -> bool:
        value = getattr(self, self.op)
        if self.op == "between":
            return bool(value[0] <= total <= value[1])
        checks = {
            "eq": total == value,
            "gt": total > value,
            "gte": total >= value,
            "lt": total < value,
            "lte": total <= value,
        }
        return bool(checks[self.op])


class When(BaseModel):
    """A date condition on the first or last time something happened."""

    model_config = Strict
    op: Literal["before", "after", "within_last", "more_than_ago"]
    value: str

    @model_validator(mode="after")
    def _value(self) -> When:
        _check_value(self.op, self.value)
        return self


def _window(value: str | None) -> str | None:
    if value is not None:
        durations.parse(value)
    return value


class Behaviour(BaseModel):
    """Did (or did not) do something: track events by name, or page views."""

    model_config = Strict
    event: str | None = Field(default=None, min_length=1, max_length=255)
    page: str | None = Field(
        default=None, min_length=1, max_length=255, description="a page name, or * for any"
    )
    where: list[Property] = Field(default_factory=list, max_length=50)
    count: Count | None = None
    total: Total | None = None
    within: str | None = None
    first: When | None = None
    last: When | None = None

    _within = field_validator("within")(classmethod(lambda cls, v: _window(v)))

    @model_validator(mode="after")
    def _one_kind(self) -> Behaviour:
        if (self.event is None) == (self.page is None):
            raise ValueError("give either 'event' (a track event name) or 'page' (a page name, or *)")
        return self

    @property
    def counting(self) -> Count:
        return self.count or AT_LEAST_ONCE


class Engagement(BaseModel):
    """Received, opened or clicked email, optionally of one message or journey, within a window.
    Machine-generated opens and clicks (scanners, privacy proxies) do not count unless asked."""

    model_config = Strict
    email: Literal["received", "opened", "clicked"]
    message: str | None = Field(default=None, max_length=64)
    journey: str | None = Field(default=None, max_length=64)
    within: str | None = None
    count: Count | None = None
    include_machine_generated: bool = False

    _within = field_validator("within")(classmethod(lambda cls, v: _window(v)))

    @property
    def counting(self) -> Count:
        return self.count or AT_LEAST_ONCE


class Membership(BaseModel):
    """In (or not in) another segment or static list."""

    model_config = Strict
    segment: str = Field(min_length=1, max_length=64)
    member: bool = True


class All(BaseModel):
    model_config = Strict
    all: list[Rule] = Field(min_length=1, max_length=200)


class AnyOf(BaseModel):
    model_config = Strict
    any: list[Rule] = Field(min_length=1, max_length=200)


class Not(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    rule: Rule = Field(alias="not")


_KINDS = (
    ("all", "all"),
    ("any", "any"),
    ("not", "not"),
    ("field", "attribute"),
    ("event", "behaviour"),
    ("page", "behaviour"),
    ("email", "engagement"),
    ("segment", "membership"),
)


def _kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {
            All: "rule:all",
            AnyOf: "rule:any",
            Not: "rule:not",
            Attribute: "rule:attribute",
            Behaviour: "rule:behaviour",
            Engagement: "rule:engagement",
            Membership: "rule:membership",
        }.get(type(value))
    if isinstance(value, dict):
        for key, kind in _KINDS:
            if key in value:
                return f"rule:{kind}"
    return None


Rule = Annotated[
    Annotated[All, Tag("rule:all")]
    | Annotated[AnyOf, Tag("rule:any")]
    | Annotated[Not, Tag("rule:not")]
    | Annotated[Attribute, Tag("rule:attribute")]
    | Annotated[Behaviour, Tag("rule:behaviour")]
    | Annotated[Engagement, Tag("rule:engagement")]
    | Annotated[Membership, Tag("rule:membership")],
    Discriminator(
        _kind,
        custom_error_type="invalid_rule",
        custom_error_message="a rule is one of all, any, not, field (attribute), event or page (behaviour), "
        "email (engagement), segment (membership)",
    ),
]
All.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Rule)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def _where(loc: tuple[int | str, ...], root: str) -> str:
    path = root
    for part in loc:
        if isinstance(part, str) and part.startswith(("rule:", "function-")):
            continue
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def parse(data: Any, *, root: str = "rules") -> Any:
    """A validated rule tree, or :class:`Invalid` (``invalid_rule``) naming each offending path."""
    if _depth(data) > MAX_DEPTH * 2:
        raise Invalid(f"{root} is nested deeper than {MAX_DEPTH} levels", code="invalid_rule")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = [
            {"path": _where(error["loc"], root), "message": error["msg"].removeprefix("Value error, ")}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5])
        raise Invalid(summary, code="invalid_rule", details=problems) from None


def dump(rule: Any) -> dict[str, Any]:
    """The JSON form to store (aliases, no defaults)."""
    return _ADAPTER.dump_python(rule, by_alias=True, exclude_none=True, exclude_defaults=True)  # type: ignore[no-any-return]


def walk(rule: Any) -> list[Any]:
    """Every node of a rule tree, groups included."""
    nodes, stack = [], [rule]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, All):
            stack.extend(node.all)
        elif isinstance(node, AnyOf):
            stack.extend(node.any)
        elif isinstance(node, Not):
            stack.append(node.rule)
    return nodes
