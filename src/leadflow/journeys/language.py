"""The parts of the journey language below the steps: shared field checks, event conditions,
triggers, entry rules and settings. :mod:`leadflow.journeys.definitions` is the public face."""

from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.contacts import service as contacts
from leadflow.segments import service as segments

Strict = ConfigDict(extra="forbid", frozen=True)
STEP_ID = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _duration(value: str | None) -> str | None:
    if value is not None:
        segments.parse_duration(value)
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

    def behaviour(self) -> segments.Behaviour:
        parsed = segments.parse_rule({"event": self.event, "where": self.where}, root="where")
        assert isinstance(parsed, segments.Behaviour)
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
        if value is not None and value not in contacts.STAGES:
            raise ValueError(f"stage is one of {', '.join(contacts.STAGES)}")
        return value


class AnniversaryTrigger(BaseModel):
    """Once a year, on the day of a date field (``traits.birthday``) in the contact's time zone."""

    model_config = Strict
    type: Literal["anniversary"]
    field: str = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def _date_field(self) -> AnniversaryTrigger:
        segments.parse_rule({"field": self.field, "op": "anniversary_today"}, root="trigger")
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
        return segments.parse_duration(self.after) if self.after else None


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
        return segments.parse_duration(self.within)


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
