"""The step types of the journey language (each a node of the graph; ``targets`` are its edges)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.crm import service as crm
from leadflow.journeys.language import (
    STEP_ID,
    WEEKDAYS,
    EventCondition,
    StageTrigger,
    Strict,
    _clock_time,
    _duration,
    _zone,
)
from leadflow.kernel.errors import Invalid
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments


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
        segments.parse_rule(value, root="if")
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
    """POST the contact, the triggering event and ``data`` to a URL through the signed webhook outbox.
    The strings of ``data`` are Liquid (checked here, rendered per contact when the step runs)."""

    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://", max_length=2000)
    event: str = Field(default="journey.step", max_length=100)
    data: dict[str, Any] = Field(default_factory=dict)
    next: str | None = None

    @field_validator("data")
    @classmethod
    def _liquid(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            messaging.check_data(value)
        except messaging.TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value


class NotifyOwner(_Step):
    """Email the lead's owner (the CRM user's address) about the contact; without one, see
    :func:`leadflow.journeys.steps.notify_owner` for the fallbacks."""

    type: Literal["notify_owner"]
    template: str = Field(default="owner-notification", max_length=100)
    fallback: str | None = Field(default=None, max_length=320)
    next: str | None = None


class LogActivity(_Step):
    """Log a call, meeting, note, task or email on the contact's lead timeline (the contact becomes a
    lead). ``subject`` and ``body`` are Liquid, rendered per contact like a webhook's data. A ``task``
    may be due ``due`` after the step; the activity belongs to the lead's owner. Logged once per step
    and run, even when the step is retried."""

    type: Literal["log_activity"]
    kind: str = "note"
    subject: str = Field(min_length=1, max_length=500)
    body: str | None = Field(default=None, max_length=20_000)
    due: str | None = None
    next: str | None = None

    _due = field_validator("due")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _valid(self) -> LogActivity:
        try:
            crm.check_kind(self.kind)
        except Invalid as exc:
            raise ValueError(str(exc)) from None
        if self.due is not None and self.kind != "task":
            raise ValueError("only a task has a due date ('due')")
        try:
            messaging.check_data(self.texts())
        except messaging.TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self

    def texts(self) -> dict[str, Any]:
        return {"subject": self.subject, "body": self.body or ""}


class SetLeadStatus(_Step):
    """Set the lead's sales status (``unqualified`` and ``lost`` need a ``reason``, the others take
    none); setting the status the lead has changes nothing."""

    type: Literal["set_lead_status"]
    status: str
    reason: str | None = Field(default=None, max_length=2000)
    next: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> SetLeadStatus:
        try:
            crm.check_status(self.status, self.reason)
        except Invalid as exc:
            raise ValueError(str(exc)) from None
        return self


class AssignOwner(_Step):
    """Make a CRM user (``user``: its id or email; active when the step runs) the lead's owner, or
    (``route: true``) let the routing rules pick one for a lead that has none."""

    type: Literal["assign_owner"]
    user: str | None = Field(default=None, min_length=1, max_length=320)
    route: bool = False
    next: str | None = None

    @model_validator(mode="after")
    def _one(self) -> AssignOwner:
        if (self.user is None) == (not self.route):
            raise ValueError("assign_owner takes a 'user' (id or email) or 'route: true', not both")
        return self


class CreateDeal(_Step):
    """Open a deal for the contact in ``pipeline`` (id or name; the default pipeline when omitted) at
    ``stage`` (id or name; the pipeline's first open stage when omitted; a won or lost stage needs a
    ``reason``). ``title``, ``value`` and ``currency`` are Liquid, rendered per contact like a webhook's
    data (``"{{ event.total }}"``); ``expected_close`` is a duration after the step (``30d``). A contact
    with an open deal in the pipeline keeps it (branch ``exists``); opened once per step and run, even
    when the step is retried (:mod:`leadflow.crm.deal_automation`)."""

    type: Literal["create_deal"]
    pipeline: str | None = Field(default=None, min_length=1, max_length=200)
    stage: str | None = Field(default=None, min_length=1, max_length=100)
    title: str = Field(default="{{ journey.name }}", min_length=1, max_length=300)
    value: str | int | float = 0
    currency: str = Field(default="EUR", min_length=1, max_length=200)
    expected_close: str | None = None
    reason: str | None = Field(default=None, max_length=2000)
    next: str | None = None

    _close = field_validator("expected_close")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _valid(self) -> CreateDeal:
        try:
            messaging.check_data(self.texts())
        except messaging.TemplateError as exc:
            raise ValueError(str(exc)) from None
        static = {k: v for k, v in self.texts().items() if "{{" not in v and "{%" not in v}
        try:
            crm.deal_money(static.get("value", 0), static.get("currency", "EUR"))
        except Invalid as exc:
            raise ValueError(str(exc)) from None
        return self

    def texts(self) -> dict[str, str]:
        return {"title": self.title, "value": str(self.value), "currency": self.currency}


class MoveDeal(_Step):
    """Move the contact's open deal in ``pipeline`` (id or name; the default pipeline when omitted) to
    ``stage`` (id or name; a won or lost stage needs a ``reason``). Forward only unless ``backwards``;
    a deal already there is left alone (branch ``unchanged``), and a contact without an open deal
    there gets none (branch ``no_deal``): the step never opens a deal."""

    type: Literal["move_deal"]
    pipeline: str | None = Field(default=None, min_length=1, max_length=200)
    stage: str = Field(min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=2000)
    backwards: bool = False
    next: str | None = None


class WaitUntilTime(_Step):
    """Wait until a moment carried by the data: ``at`` is Liquid rendering an ISO-8601 date and time
    with its UTC offset (``"{{ event.start_time }}"``), shifted by ``offset`` (``-24h``, ``+30m``).
    A moment already past goes on at once to ``next`` (branch ``past``), or with ``skip_if_past`` to
    ``on_past`` (none: the run ends). A value that is missing or not such a time fails the step with
    the reason. Since it may go on at once, a loop through it needs another wait."""

    type: Literal["wait_until_time"]
    at: str = Field(min_length=1, max_length=500)
    offset: str | None = Field(default=None, max_length=20)
    skip_if_past: bool = False
    on_past: str | None = None
    next: str | None = None

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: str | None) -> str | None:
        if value is not None:
            _duration(value.strip().removeprefix("-").removeprefix("+"))
        return value

    @model_validator(mode="after")
    def _valid(self) -> WaitUntilTime:
        if self.on_past is not None and not self.skip_if_past:
            raise ValueError("'on_past' goes with 'skip_if_past: true'")
        try:
            messaging.check_data({"at": self.at})
        except messaging.TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self

    def targets(self) -> list[str | None]:
        return [self.next, self.on_past] if self.skip_if_past else [self.next]


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
    | WaitUntilTime
    | Branch
    | Split
    | Tags
    | UpdateField
    | SetStage
    | Webhook
    | NotifyOwner
    | LogActivity
    | SetLeadStatus
    | AssignOwner
    | CreateDeal
    | MoveDeal
    | GoalStep
    | Exit,
    Field(discriminator="type"),
]
STEP_TYPES = (
    "send_email",
    "wait",
    "wait_until",
    "wait_for_time",
    "wait_until_time",
    "branch",
    "split",
    "add_tag",
    "remove_tag",
    "update_field",
    "set_stage",
    "webhook",
    "notify_owner",
    "log_activity",
    "set_lead_status",
    "assign_owner",
    "create_deal",
    "move_deal",
    "goal",
    "exit",
)
