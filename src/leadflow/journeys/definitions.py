"""The journey definition language (JSON or YAML): triggers, entry rules, settings and a graph of steps.

See docs/journeys.md for the reference with examples. A definition is validated as a whole when it is
saved and again, against the installation (templates and segments must exist), when it is published.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.contacts.lifecycle import STAGES
from leadflow.segments import durations, rules

Strict = ConfigDict(extra="forbid", frozen=True)
STEP_ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _duration(value: str | None) -> str | None:
    if value is not None:
        durations.parse(value)
    return value


def _zone(value: str | None) -> str | None:
    if value is not None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin") from None
    return value


def _clock_time(value: str) -> str:
    if not CLOCK_TIME.match(value):
        raise ValueError(f"{value!r} is not a time of day like 09:00")
    return value


def parse_time(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class EventCondition(BaseModel):
    """A track event by name, optionally with conditions on its properties (the segment rule
    language's property conditions: ``{"field": "total", "op": "gt", "value": 100}``)."""

    model_config = Strict
    event: str = Field(min_length=1, max_length=255)
    where: list[dict[str, Any]] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _conditions(self) -> EventCondition:
        self.behaviour()
        return self

    def behaviour(self) -> rules.Behaviour:
        parsed = rules.parse({"event": self.event, "where": self.where}, root="where")
        assert isinstance(parsed, rules.Behaviour)
        return parsed


# ---- triggers ------------------------------------------------------------------------------------
class EventTrigger(EventCondition):
    type: Literal["event"]


class SegmentTrigger(BaseModel):
    """Entering (or leaving) a segment; ``segment`` is its id or key."""

    model_config = Strict
    type: Literal["segment_entered", "segment_exited"]
    segment: str = Field(min_length=1, max_length=100)


class ScheduleTrigger(BaseModel):
    """At every tick of a cron expression in a time zone, everyone in a segment enters."""

    model_config = Strict
    type: Literal["schedule"]
    cron: str = Field(min_length=9, max_length=100)
    timezone: str = "UTC"
    segment: str = Field(min_length=1, max_length=100)

    _zone = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression like '0 9 * * mon'")
        return value


class ScoreBandTrigger(BaseModel):
    """The contact's score band changed (to ``band``, or to any band when absent)."""

    model_config = Strict
    type: Literal["score_band_changed"]
    band: str | None = Field(default=None, max_length=50)
    direction: Literal["up", "down", "any"] = "any"


class StageTrigger(BaseModel):
    """The contact's lifecycle stage changed (to ``stage``, or to any stage when absent)."""

    model_config = Strict
    type: Literal["stage_changed"]
    stage: str | None = None

    @field_validator("stage")
    @classmethod
    def _stage(cls, value: str | None) -> str | None:
        if value is not None and value not in STAGES:
            raise ValueError(f"stage is one of {', '.join(STAGES)}")
        return value


class AnniversaryTrigger(BaseModel):
    """Once a year, on the day of a date field (``traits.birthday``) in the contact's time zone."""

    model_config = Strict
    type: Literal["anniversary"]
    field: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _date_field(self) -> AnniversaryTrigger:
        rules.parse({"field": self.field, "op": "anniversary_today"}, root="trigger")
        return self


Trigger = Annotated[
    EventTrigger | SegmentTrigger | ScheduleTrigger | ScoreBandTrigger | StageTrigger | AnniversaryTrigger,
    Field(discriminator="type"),
]


# ---- entry and settings --------------------------------------------------------------------------
class Entry(BaseModel):
    """Who may enter again: ``never`` (once per contact, ever), ``after`` (``after`` since their last
    entry) or ``always``. By default a contact has at most one active run of a journey."""

    model_config = Strict
    reentry: Literal["never", "after", "always"] = "never"
    after: str | None = None
    one_at_a_time: bool = True

    _after = field_validator("after")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _after_given(self) -> Entry:
        if (self.reentry == "after") != (self.after is not None):
            raise ValueError("give 'after' (e.g. 30d) exactly when reentry is 'after'")
        return self

    @property
    def wait(self) -> timedelta | None:
        return durations.parse(self.after) if self.after else None


class ExitWhen(BaseModel):
    """Leave the journey on an event (with conditions) or on entering a segment."""

    model_config = Strict
    event: str | None = Field(default=None, min_length=1, max_length=255)
    where: list[dict[str, Any]] = Field(default_factory=list, max_length=50)
    segment: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one(self) -> ExitWhen:
        if (self.event is None) == (self.segment is None):
            raise ValueError("an exit criterion is an 'event' or a 'segment'")
        if self.event is not None:
            EventCondition(event=self.event, where=self.where)
        elif self.where:
            raise ValueError("'where' applies to an event exit")
        return self

    def condition(self) -> EventCondition | None:
        return EventCondition(event=self.event, where=self.where) if self.event else None


class Goal(EventCondition):
    """The conversion: doing ``event`` within ``within`` of entering counts the run as converted and
    ends it (a contact who already left still counts, for holdout comparisons)."""

    within: str = "30d"

    _within = field_validator("within")(classmethod(lambda cls, v: _duration(v)))

    @property
    def window(self) -> timedelta:
        return durations.parse(self.within)


class QuietHours(BaseModel):
    """No email between ``start`` and ``end`` in the contact's time zone: a send that falls inside
    waits until ``end``."""

    model_config = Strict
    start: str
    end: str

    _times = field_validator("start", "end")(classmethod(lambda cls, v: _clock_time(v)))

    @model_validator(mode="after")
    def _differ(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours need a start and an end that differ")
        return self


class Settings(BaseModel):
    model_config = Strict
    kind: Literal["marketing", "transactional"] = "marketing"
    topic: str | None = Field(default=None, max_length=64)
    exit: list[ExitWhen] = Field(default_factory=list, max_length=20)
    goal: Goal | None = None
    quiet_hours: QuietHours | None = None
    frequency_cap: bool = Field(default=True, description="count this journey's email against the cap")


# ---- steps ---------------------------------------------------------------------------------------
class _Step(BaseModel):
    model_config = Strict
    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)

    def targets(self) -> list[str | None]:
        """The steps this one can lead to (``None``: the journey ends there)."""
        return [getattr(self, "next", None)]

    @property
    def delays(self) -> bool:
        """Whether the step waits (a cycle must pass through one)."""
        return False


class SendEmail(_Step):
    type: Literal["send_email"]
    template: str = Field(min_length=1, max_length=100)
    variables: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None


class Wait(_Step):
    type: Literal["wait"]
    duration: str
    next: str | None = None

    _duration = field_validator("duration")(classmethod(lambda cls, v: _duration(v)))

    @property
    def delays(self) -> bool:
        return True


class WaitUntil(EventCondition):
    """Wait for an event (with conditions), at most ``timeout``; each outcome has its own branch."""

    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)
    type: Literal["wait_until"]
    timeout: str
    on_event: str | None = None
    on_timeout: str | None = None

    _timeout = field_validator("timeout")(classmethod(lambda cls, v: _duration(v)))

    def targets(self) -> list[str | None]:
        return [self.on_event, self.on_timeout]

    @property
    def delays(self) -> bool:
        return True


class WaitForTime(_Step):
    """Wait until the next ``time`` (e.g. 09:00) on an allowed weekday in the contact's time zone
    (``timezone`` overrides it; contacts without one use the installation default)."""

    type: Literal["wait_for_time"]
    time: str
    weekdays: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS),  # type: ignore[arg-type]
        min_length=1,
    )
    timezone: str | None = None
    next: str | None = None

    _time = field_validator("time")(classmethod(lambda cls, v: _clock_time(v)))
    _zone = field_validator("timezone")(classmethod(lambda cls, v: _zone(v)))

    @property
    def delays(self) -> bool:
        return True


class Branch(_Step):
    """If the contact matches the rule (segment rule language) at that moment, ``then``, else ``else``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["branch"]
    condition: dict[str, Any] = Field(alias="if")
    then: str | None = None
    otherwise: str | None = Field(default=None, alias="else")

    @field_validator("condition")
    @classmethod
    def _rule(cls, value: dict[str, Any]) -> dict[str, Any]:
        rules.parse(value, root="if")
        return value

    def targets(self) -> list[str | None]:
        return [self.then, self.otherwise]


class Path(BaseModel):
    model_config = Strict
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    weight: float = Field(gt=0, le=100)
    next: str | None = None


class Split(_Step):
    """A/B/n: each contact takes one path at random by weight, the same path every time (hashed from
    journey, step and contact); ``holdout`` percent of contacts leave at once as a control group."""

    type: Literal["split"]
    paths: list[Path] = Field(min_length=2, max_length=10)
    holdout: float = Field(default=0, ge=0, lt=100)

    @model_validator(mode="after")
    def _names(self) -> Split:
        if len({p.name for p in self.paths}) != len(self.paths) or "holdout" in {p.name for p in self.paths}:
            raise ValueError("split paths need different names, and 'holdout' is reserved")
        return self

    def targets(self) -> list[str | None]:
        return [p.next for p in self.paths]


class Tags(_Step):
    type: Literal["add_tag", "remove_tag"]
    tags: list[str] = Field(min_length=1, max_length=50)
    next: str | None = None


class UpdateField(_Step):
    """Set a contact field (``first_name``, ``timezone``, ``traits.course`` …) to a value."""

    type: Literal["update_field"]
    field: str = Field(min_length=1, max_length=200)
    value: Any = None
    next: str | None = None

    @field_validator("field")
    @classmethod
    def _settable(cls, value: str) -> str:
        if value in {"first_name", "last_name", "phone", "timezone", "owner_id"}:
            return value
        if value.startswith("traits.") and len(value) > 7 and "." not in value[7:]:
            return value
        raise ValueError(
            "update_field sets first_name, last_name, phone, timezone, owner_id or traits.<name>"
        )


class SetStage(_Step):
    """Move the contact to a lifecycle stage; only forward unless ``force``."""

    type: Literal["set_stage"]
    stage: str
    force: bool = False
    next: str | None = None

    _stage = field_validator("stage")(classmethod(lambda cls, v: StageTrigger._stage(v)))


class Webhook(_Step):
    """POST the contact (and ``data``) to a URL through the signed webhook outbox."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    event: str = Field(default="journey.step", max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None


class NotifyOwner(_Step):
    """Email the contact's owner (or ``fallback`` when the contact has none) about the contact."""

    type: Literal["notify_owner"]
    template: str = Field(default="owner-notification", max_length=100)
    fallback: str | None = Field(default=None, max_length=320)
    next: str | None = None


class GoalStep(EventCondition):
    """A conversion checkpoint: a contact who has done ``event`` since entering (or does within
    ``within``) leaves as converted; otherwise they go on to ``next``."""

    id: str = Field(pattern=STEP_ID)
    name: str | None = Field(default=None, max_length=200)
    type: Literal["goal"]
    within: str | None = None
    next: str | None = None

    _within = field_validator("within")(classmethod(lambda cls, v: _duration(v)))

    def targets(self) -> list[str | None]:
        return [self.next]

    @property
    def delays(self) -> bool:
        return self.within is not None


class Exit(_Step):
    type: Literal["exit"]

    def targets(self) -> list[str | None]:
        return []


Step = Annotated[
    SendEmail
    | Wait
    | WaitUntil
    | WaitForTime
    | Branch
    | Split
    | Tags
    | UpdateField
    | SetStage
    | Webhook
    | NotifyOwner
    | GoalStep
    | Exit,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "send_email",
    "wait",
    "wait_until",
    "wait_for_time",
    "branch",
    "split",
    "add_tag",
    "remove_tag",
    "update_field",
    "set_stage",
    "webhook",
    "notify_owner",
    "goal",
    "exit",
)


class Definition(BaseModel):
    """A whole journey. The first step is where contacts start."""

    model_config = Strict
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    trigger: Trigger
    entry: Entry = Field(default_factory=Entry)
    settings: Settings = Field(default_factory=Settings)
    variables: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _graph(self) -> Definition:
        check_graph(self.steps)
        return self

    @property
    def start(self) -> str:
        return self.steps[0].id

    def step(self, step_id: str) -> Any:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def templates(self) -> set[str]:
        """The email templates the steps use."""
        return {s.template for s in self.steps if isinstance(s, SendEmail | NotifyOwner)}

    def segments(self) -> set[str]:
        """The segments (ids or keys) the trigger and exit criteria name."""
        found = {e.segment for e in self.settings.exit if e.segment}
        if isinstance(self.trigger, SegmentTrigger | ScheduleTrigger):
            found.add(self.trigger.segment)
        return found


def check_graph(steps: list[Any]) -> None:
    """Step ids are unique, every target exists, every step is reachable from the first, and every
    cycle passes through a step that waits (a loop without one would spin forever)."""
    by_id: dict[str, Any] = {}
    for step in steps:
        if step.id in by_id:
            raise ValueError(f"two steps are called {step.id!r}")
        by_id[step.id] = step
    for step in steps:
        for target in step.targets():
            if target is not None and target not in by_id:
                raise ValueError(f"step {step.id!r} leads to {target!r}, which is not a step")
    reachable = _reachable(steps[0].id, by_id, through_waits=True)
    unreachable = [s.id for s in steps if s.id not in reachable]
    if unreachable:
        raise ValueError(f"no path from the first step reaches {', '.join(unreachable)}")
    for step in steps:
        if not step.delays and step.id in _reachable_instantly(step, by_id):
            raise ValueError(f"step {step.id!r} is on a loop with no wait in it")


def _reachable(start: str, by_id: dict[str, Any], *, through_waits: bool) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        step = by_id[current]
        if through_waits or not step.delays:
            todo.extend(t for t in step.targets() if t is not None)
    return seen


def _reachable_instantly(step: Any, by_id: dict[str, Any]) -> set[str]:
    """Steps reachable from ``step``'s targets without passing a waiting step."""
    found: set[str] = set()
    for target in step.targets():
        if target is not None:
            found |= _reachable(target, by_id, through_waits=False)
    return found


def parse(data: Any) -> Definition:
    """Validate a definition (already loaded from JSON or YAML); pydantic's errors name the place."""
    return Definition.model_validate(data)
