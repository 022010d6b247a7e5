"""Scoring rules: their API shape and their loaded, validated form."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.segments import service as segments

Kind = Literal["behavioral", "demographic", "firmographic"]
EMAIL_PREFIX = "leadflow.email_"


def _window(value: str | None) -> str | None:
    if value is not None:
        segments.parse_duration(value)
    return value


class ScoringRuleFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    points: float | None = Field(default=None, ge=-1000, le=1000, description="negative points are allowed")
    event: str | None = Field(
        default=None, min_length=1, max_length=255, description="behavioural: a track event"
    )
    page: str | None = Field(
        default=None, min_length=1, max_length=255, description="behavioural: a page name or *"
    )
    where: list[dict[str, Any]] | None = Field(
        default=None, description="behavioural: event property conditions"
    )
    max_occurrences: int | None = Field(default=None, ge=1, le=100_000)
    window: str | None = Field(
        default=None, description="behavioural: only occurrences in the last 30d, 12h …"
    )
    conditions: dict[str, Any] | None = Field(
        default=None, description="demographic/firmographic: a rule tree"
    )
    active: bool | None = None

    _check_window = field_validator("window")(classmethod(lambda cls, v: _window(v)))


class ScoringRuleCreate(ScoringRuleFields):
    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    points: float = Field(ge=-1000, le=1000)

    @model_validator(mode="after")
    def _by_kind(self) -> ScoringRuleCreate:
        check_shape(self.kind, self.model_dump(exclude_unset=True))
        return self


class ScoringRule(BaseModel):
    id: str
    name: str
    kind: str
    points: float
    event: str | None
    page: str | None
    where: list[dict[str, Any]]
    max_occurrences: int | None
    window: str | None
    conditions: dict[str, Any] | None
    active: bool
    created_at: datetime
    updated_at: datetime


BEHAVIOURAL_FIELDS = frozenset({"event", "page", "where", "max_occurrences", "window"})


def check_shape(kind: str, given: dict[str, Any]) -> None:
    """Behavioural rules name an event or page; the others carry conditions."""
    behavioural = BEHAVIOURAL_FIELDS & given.keys()
    if kind == "behavioral":
        if given.get("conditions") is not None:
            raise ValueError("a behavioural rule scores events: give 'event' or 'page', not 'conditions'")
        if (given.get("event") is None) == (given.get("page") is None):
            raise ValueError("a behavioural rule needs either 'event' or 'page'")
    else:
        if behavioural:
            raise ValueError(
                f"a {kind} rule scores contact fields: give 'conditions', not {sorted(behavioural)}"
            )
        if given.get("conditions") is None:
            raise ValueError(f"a {kind} rule needs 'conditions'")


@dataclass(frozen=True)
class Loaded:
    """A rule ready to evaluate."""

    id: str
    name: str
    kind: str
    points: float
    max_occurrences: int | None
    window_seconds: int | None
    behaviour: segments.Behaviour | None
    condition: Any
    updated_at: datetime

    @property
    def engagement(self) -> bool:
        return bool(self.behaviour and self.behaviour.event and self.behaviour.event.startswith(EMAIL_PREFIX))


def definition_json(kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The stored definition; validates the embedded rule language (errors name the path)."""
    if kind == "behavioral":
        body = {k: fields[k] for k in ("event", "page", "where") if fields.get(k) is not None}
        stored = segments.dump_rule(segments.parse_rule(body, root="rule"))
        return {**stored, "window": fields["window"]} if fields.get("window") else stored
    return {"conditions": segments.dump_rule(segments.parse_rule(fields["conditions"], root="conditions"))}


def load(row: Any) -> Loaded:
    definition = row.definition
    event_rule = {k: v for k, v in definition.items() if k != "window"}
    behaviour = segments.parse_rule(event_rule, root="rule") if row.kind == "behavioral" else None
    condition = (
        segments.parse_rule(definition["conditions"], root="conditions") if row.kind != "behavioral" else None
    )
    return Loaded(
        id=row.id,
        name=row.name,
        kind=row.kind,
        points=row.points,
        max_occurrences=row.max_occurrences,
        window_seconds=row.window_seconds,
        behaviour=behaviour,
        condition=condition,
        updated_at=row.updated_at,
    )


def view(row: Any) -> ScoringRule:
    definition = row.definition
    window = definition.get("window")
    return ScoringRule(
        id=row.id,
        name=row.name,
        kind=row.kind,
        points=row.points,
        event=definition.get("event"),
        page=definition.get("page"),
        where=definition.get("where", []),
        max_occurrences=row.max_occurrences,
        window=window,
        conditions=definition.get("conditions"),
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
