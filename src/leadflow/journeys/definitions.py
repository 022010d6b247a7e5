"""The journey definition language (JSON or YAML): triggers, entry rules, settings and a graph of steps.

See docs/journeys.md for the reference with examples. A definition is validated as a whole when it is
saved and again, against the installation (templates and segments must exist), when it is published.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_validator

from leadflow.journeys.language import (
    STEP_ID,
    WEEKDAYS,
    AnniversaryTrigger,
    Entry,
    EventCondition,
    EventTrigger,
    ExitWhen,
    Goal,
    QuietHours,
    ScheduleTrigger,
    ScoreBandTrigger,
    SegmentTrigger,
    Settings,
    StageTrigger,
    Strict,
    Trigger,
    parse_time,
)
from leadflow.journeys.step_types import (
    STEP_TYPES,
    AssignOwner,
    Branch,
    CreateDeal,
    Exit,
    GoalStep,
    LogActivity,
    MoveDeal,
    NotifyOwner,
    Path,
    SendEmail,
    SetLeadStatus,
    SetStage,
    Split,
    Step,
    Tags,
    UpdateField,
    Wait,
    WaitForTime,
    WaitUntil,
    WaitUntilTime,
    Webhook,
)

__all__ = [
    "STEP_ID",
    "STEP_TYPES",
    "WEEKDAYS",
    "AnniversaryTrigger",
    "AssignOwner",
    "Branch",
    "CreateDeal",
    "Definition",
    "Entry",
    "EventCondition",
    "EventTrigger",
    "Exit",
    "ExitWhen",
    "Goal",
    "GoalStep",
    "LogActivity",
    "MoveDeal",
    "NotifyOwner",
    "Path",
    "QuietHours",
    "ScheduleTrigger",
    "ScoreBandTrigger",
    "SegmentTrigger",
    "SendEmail",
    "SetLeadStatus",
    "SetStage",
    "Settings",
    "Split",
    "StageTrigger",
    "Step",
    "Tags",
    "Trigger",
    "UpdateField",
    "Wait",
    "WaitForTime",
    "WaitUntil",
    "WaitUntilTime",
    "Webhook",
    "check_graph",
    "parse",
    "parse_time",
]


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

    def sends_marketing(self) -> bool:
        """Whether contacts get marketing email from it (a ``send_email`` step in a marketing journey):
        such email must show the sender's postal address."""
        return self.settings.kind == "marketing" and any(isinstance(s, SendEmail) for s in self.steps)

    def deal_steps(self) -> list[CreateDeal | MoveDeal]:
        """The steps that name a pipeline and stage (checked against the CRM when publishing)."""
        return [s for s in self.steps if isinstance(s, CreateDeal | MoveDeal)]

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
