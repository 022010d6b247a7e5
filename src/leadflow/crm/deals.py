"""Deals: a value in a currency moving through a pipeline's stages, with the time spent in each.

- A deal is in one stage of its pipeline; its ``status`` is that stage's kind (``open``, ``won``,
  ``lost``). Moving it to a won or lost stage needs a reason (422 ``reason_required``); moving it to
  an open stage clears the reason. People may move a deal anywhere (also back, also out of won/lost).
- Every stage a deal is in is one row of ``crm_deal_stages`` (``entered_at``, ``left_at`` null while
  it is there): time in stage is computed from those rows, and every write here also changes the
  pipeline stats' per-day counters in the same transaction (:mod:`leadflow.crm.stage_counters`).
- ``value`` is exact (a decimal with at most 4 places, stored as ``NUMERIC(20, 4)``) in an ISO 4217
  currency (three upper-case letters).
- Changes are audited (on the deal) and, for a deal with a contact, are pipeline events of that
  contact — ``deal.created`` ``{"deal_id", "pipeline_id", "stage", "value", "currency"}`` and
  ``deal.stage_changed`` ``{"deal_id", "pipeline_id", "from", "to", "value", "currency", "reason"}``
  (stage names) — so they reach journeys, segments, webhooks and the lead's timeline.

**Stage-progression rules** (see :mod:`leadflow.crm.pipelines`): for each batch the pipeline applies
(``ContactsTouched``), the tracked events named by a pipeline's rules move that contact's open deals
in that pipeline to the rule's stage — only when the stage comes later (by position) than where the
deal is, so a rule never moves a deal backwards; won and lost deals are not open, so they never move
automatically. When the contact has no open deal in the pipeline and the rule says ``create``, one
deal is opened at the rule's stage (title: the event name; value 0 in the pipeline's first currency
seen, EUR by default — the team fills in the value). Several rules matching one contact in one batch:
the furthest stage wins. The moves of a batch are written with one statement per kind of write.

GDPR: an erased person's deals stay (the business keeps its revenue numbers) without the person —
``contact_id`` cleared, ``title`` replaced, ``reason`` cleared; a merge moves the merged contact's
deals to the survivor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.crm import leads, people, pipelines, queries, stage_counters
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunked
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.facts import ContactsErased, ContactsMerged
from leadflow.kernel.ids import new_id

CREATED, STAGE_CHANGED = "deal.created", "deal.stage_changed"
ENTITY = "crm_deal"
SYSTEM = "system:deal-rules"
DEFAULT_CURRENCY = "EUR"
DealStatus = Literal["open", "won", "lost"]
Money = Annotated[Decimal, Field(ge=0, le=Decimal("9999999999999999"), max_digits=20, decimal_places=4)]
Currency = Annotated[str, Field(pattern="^[A-Z]{3}$", description="ISO 4217")]


class DealFields(BaseModel):
    """Omitted fields are left alone. ``stage`` is a stage id or name of the deal's pipeline."""

    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=300)
    stage: str | None = Field(default=None, min_length=1, max_length=100)
    reason: str | None = Field(default=None, max_length=2000, description="required for won/lost stages")
    value: Money | None = None
    currency: Currency | None = None
    expected_close: date | None = None
    owner_id: str | None = Field(default=None, max_length=26)
    company_id: str | None = Field(default=None, max_length=26)


class DealCreate(DealFields):
    title: str = Field(min_length=1, max_length=300)
    pipeline_id: str | None = Field(default=None, max_length=26, description="the default pipeline if none")
    email: str | None = Field(default=None, max_length=320, description="the contact's email")
    value: Money
    currency: Currency


class Deal(BaseModel):
    id: str
    pipeline_id: str
    stage_id: str
    stage: str
    status: DealStatus
    title: str
    value: Decimal
    currency: str
    expected_close: date | None
    owner_id: str | None
    contact_id: str | None
    company_id: str | None
    reason: str | None
    created_at: datetime
    updated_at: datetime


class StageVisit(BaseModel):
    stage_id: str
    entered_at: datetime
    left_at: datetime | None
    days: float


class DealDetail(Deal):
    history: list[StageVisit]


@dataclass(frozen=True)
class Move:
    """One deal to one stage (a person's change or a rule's)."""

    deal_id: str
    contact_id: str | None
    pipeline_id: str
    from_stage: str
    to_stage_id: str
    to_stage: str
    to_kind: str
    reason: str | None
    value: Decimal
    currency: str


# ---- reading ---------------------------------------------------------------------------------------


def _row(conn: Connection, deal_id: str) -> Any:
    found = conn.execute(queries.DEAL, {"deal_id": deal_id}).first()
    if found is None:
        raise NotFound(f"no deal {deal_id}", code="deal_not_found")
    return found


def _stage_names(conn: Connection, pipeline_id: str) -> dict[str, pipelines.Stage]:
    return {s.id: s for s in pipelines.stages(conn, pipeline_id)}


def _deal(row: Any, stage_name: str) -> Deal:
    return Deal.model_validate({**row._mapping, "stage": stage_name})


def read(conn: Connection, deal_id: str, now: datetime) -> DealDetail:
    found = _row(conn, deal_id)
    names = _stage_names(conn, found.pipeline_id)
    history = [
        StageVisit(
            stage_id=v.stage_id,
            entered_at=v.entered_at,
            left_at=v.left_at,
            days=round(((v.left_at or now) - v.entered_at) / timedelta(days=1), 6),
        )
        for v in conn.execute(queries.VISITS, {"deal_id": deal_id})
    ]
    return DealDetail(**_deal(found, names[found.stage_id].name).model_dump(), history=history)


def get(ctx: AppContext, deal_id: str) -> DealDetail:
    with ctx.db.read() as conn:
        return read(conn, deal_id, ctx.clock.now())


def listing(
    ctx: AppContext,
    *,
    pipeline_id: str | None,
    stage_id: str | None,
    owner_id: str | None,
    email: str | None,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Deal]:
    """Deals newest first, filtered; one query (and one for the stage names)."""
    with ctx.db.read() as conn:
        contact_id = leads.contact_of(conn, email) if email else None
        rows = list(
            conn.execute(
                queries.deals_page(
                    pipeline_id=pipeline_id,
                    stage_id=stage_id,
                    owner_id=owner_id,
                    contact_id=contact_id,
                    status=status,
                    before=before,
                    limit=limit,
                )
            )
        )
        names: dict[str, str] = {row.id: row.name for row in conn.execute(queries.STAGE_NAMES)}
    return [_deal(r, names[r.stage_id]) for r in rows]


# ---- changes ---------------------------------------------------------------------------------------


def _stage(conn: Connection, pipeline_id: str, given: str | None) -> pipelines.Stage:
    """A stage of the pipeline by id or name; the first open stage when none is given."""
    found = pipelines.stages(conn, pipeline_id)
    if given is None:
        return next(s for s in found if s.kind == "open")
    for stage in found:
        if given in (stage.id, stage.name):
            return stage
    raise Invalid(f"no stage {given!r} in pipeline {pipeline_id}", code="stage_not_found")


def _reason(stage: pipelines.Stage, reason: str | None) -> str | None:
    if stage.kind == "open":
        return None
    if not (reason and reason.strip()):
        raise Invalid(
            f"moving a deal to {stage.name!r} ({stage.kind}) needs a reason", code="reason_required"
        )
    return reason.strip()


def _check_refs(conn: Connection, values: dict[str, Any]) -> None:
    if values.get("owner_id") is not None:
        people.check_owner(conn, values["owner_id"])
    company = values.get("company_id")
    if company is not None and not contacts.company_rows_of(conn, ["id"], [company]):
        raise Invalid(f"no company {company}", code="company_not_found")


def _contact(conn: Connection, email: str | None) -> str | None:
    """The contact a new deal is for (422 ``contact_not_found``: the address is a value of the body)."""
    if email is None:
        return None
    try:
        return leads.contact_of(conn, email)
    except NotFound as missing:
        raise Invalid(str(missing), code="contact_not_found") from None


def _money(value: Decimal) -> float:
    return float(value)


def create(ctx: AppContext, data: DealCreate, *, actor: str) -> DealDetail:
    now, deal_id = ctx.clock.now(), new_id()
    with ctx.db.write() as conn:
        pipeline_id = data.pipeline_id or pipelines.default_id(conn)
        if (
            data.pipeline_id is not None
            and conn.execute(queries.PIPELINE, {"pipeline_id": pipeline_id}).first() is None
        ):
            raise Invalid(f"no pipeline {pipeline_id}", code="pipeline_not_found")
        stage = _stage(conn, pipeline_id, data.stage)
        reason = _reason(stage, data.reason)
        _check_refs(conn, data.model_dump())
        contact_id = _contact(conn, data.email)
        if contact_id is not None:
            leads.ensure(conn, contact_id, now)
        row = {
            "id": deal_id,
            "pipeline_id": pipeline_id,
            "stage_id": stage.id,
            "status": stage.kind,
            "title": data.title.strip(),
            "value": data.value,
            "currency": data.currency,
            "expected_close": data.expected_close,
            "owner_id": data.owner_id,
            "contact_id": contact_id,
            "company_id": data.company_id,
            "reason": reason,
            "created_at": now,
            "updated_at": now,
        }
        insert_rows(conn, [row], {stage.id: stage.name}, now, actor, ctx)
        return read(conn, deal_id, now)


def insert_rows(
    conn: Connection,
    rows: list[dict[str, Any]],
    names: dict[str, str],
    now: datetime,
    actor: str,
    ctx: AppContext,
) -> None:
    """New deals (a person's or the rules'), each entering its stage (``names``: stage id → name);
    audited, ``deal.created``."""
    conn.execute(queries.INSERT_DEAL, rows)
    conn.execute(
        queries.ENTER_STAGE, [{"deal": r["id"], "to_stage": r["stage_id"], "now": now} for r in rows]
    )
    stage_counters.record(conn, stage_counters.EMPTY, stage_counters.snapshot(conn, [r["id"] for r in rows]))
    details = [
        {
            "deal_id": r["id"],
            "pipeline_id": r["pipeline_id"],
            "stage": names[r["stage_id"]],
            "value": _money(r["value"]),
            "currency": r["currency"],
        }
        for r in rows
    ]
    audit.record_many(
        conn,
        ctx.clock,
        actor=actor,
        action="crm.deal_created",
        entity_type=ENTITY,
        items=[(d["deal_id"], d) for d in details],
    )
    events.emit_many(
        conn,
        [
            (r["contact_id"], CREATED, d, f"deal-created:{r['id']}")
            for r, d in zip(rows, details, strict=True)
            if r["contact_id"] is not None
        ],
        now,
    )


def apply_moves(conn: Connection, moves: Sequence[Move], now: datetime, actor: str, ctx: AppContext) -> None:
    """Move deals: one statement per kind of write for the whole list; audited, ``deal.stage_changed``."""
    if not moves:
        return
    params = [
        {
            "deal": m.deal_id,
            "to_stage": m.to_stage_id,
            "new_status": m.to_kind,
            "new_reason": m.reason,
            "now": now,
        }
        for m in moves
    ]
    moved = [m.deal_id for m in moves]
    before = stage_counters.snapshot(conn, moved, lock=True)
    conn.execute(queries.MOVE_DEAL, params)
    conn.execute(queries.LEAVE_STAGE, params)
    conn.execute(queries.ENTER_STAGE, params)
    stage_counters.record(conn, before, stage_counters.snapshot(conn, moved))
    details: list[dict[str, Any]] = [
        {
            "deal_id": m.deal_id,
            "pipeline_id": m.pipeline_id,
            "from": m.from_stage,
            "to": m.to_stage,
            "value": _money(m.value),
            "currency": m.currency,
            "reason": m.reason,
        }
        for m in moves
    ]
    audit.record_many(
        conn,
        ctx.clock,
        actor=actor,
        action="crm.deal_stage_changed",
        entity_type=ENTITY,
        items=[(d["deal_id"], d) for d in details],
    )
    events.emit_many(
        conn,
        [
            (m.contact_id, STAGE_CHANGED, d, f"deal-stage:{new_id()}")
            for m, d in zip(moves, details, strict=True)
            if m.contact_id is not None
        ],
        now,
    )


def update(ctx: AppContext, deal_id: str, data: DealFields, *, actor: str) -> DealDetail:
    """Change a deal's fields and/or its stage (a stage change is a move: history, event)."""
    given = data.model_dump(exclude_unset=True)
    for required in ("title", "value", "currency"):
        if required in given and given[required] is None:
            raise Invalid(f"{required} cannot be cleared", code=f"invalid_{required}")
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        before = conn.execute(queries.DEAL.with_for_update(), {"deal_id": deal_id}).first()
        if before is None:
            raise NotFound(f"no deal {deal_id}", code="deal_not_found")
        _check_refs(conn, given)
        target = given.pop("stage", None)
        reason = given.pop("reason", None)
        if "title" in given:
            given["title"] = given["title"].strip()
        if given:
            counted = stage_counters.snapshot(conn, [deal_id] if {"value", "currency"} & set(given) else [])
            conn.execute(queries.change_deal(deal_id, {**given, "updated_at": now}))
            stage_counters.record(conn, counted, stage_counters.snapshot(conn, [d.id for d in counted.deals]))
            audit.record(
                conn,
                ctx.clock,
                actor=actor,
                action="crm.deal_updated",
                entity_type=ENTITY,
                entity_id=deal_id,
                data={k: str(v) if isinstance(v, Decimal | date) else v for k, v in given.items()},
            )
        if target is not None:
            names = _stage_names(conn, before.pipeline_id)
            stage = _stage(conn, before.pipeline_id, target)
            if stage.id != before.stage_id:
                after = _row(conn, deal_id)
                move = Move(
                    deal_id=deal_id,
                    contact_id=before.contact_id,
                    pipeline_id=before.pipeline_id,
                    from_stage=names[before.stage_id].name,
                    to_stage_id=stage.id,
                    to_stage=stage.name,
                    to_kind=stage.kind,
                    reason=_reason(stage, reason),
                    value=after.value,
                    currency=after.currency,
                )
                apply_moves(conn, [move], now, actor, ctx)
        elif reason is not None:
            raise Invalid("a reason goes with a stage change", code="reason_not_allowed")
        return read(conn, deal_id, now)


def delete(ctx: AppContext, deal_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        before = _row(conn, deal_id)
        counted = stage_counters.snapshot(conn, [deal_id], lock=True)
        conn.execute(queries.DELETE_DEAL_VISITS, {"deal_id": deal_id})
        conn.execute(queries.DELETE_DEAL, {"deal_id": deal_id})
        stage_counters.record(conn, counted, stage_counters.EMPTY)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.deal_deleted",
            entity_type=ENTITY,
            entity_id=deal_id,
            data={"pipeline_id": before.pipeline_id, "value": str(before.value), "currency": before.currency},
        )


# ---- merges, erasure, export ---------------------------------------------------------------------


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merged contact's deals become the survivor's."""
    pairs = [{"loser": loser, "survivor": survivor} for loser, survivor in message.pairs]
    if pairs:
        conn.execute(queries.MOVE_DEALS, pairs)


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """GDPR erasure: the person's deals stay as revenue numbers, detached from them and without their
    free text (title, reason); see :mod:`leadflow.privacy.columns`."""
    for chunk in chunked(list(message.contact_ids), 1000):
        conn.execute(queries.detach_deals(chunk))


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The person's deals (GDPR access); values as strings (exact)."""
    return [
        {k: str(v) if isinstance(v, Decimal | date) else v for k, v in row._mapping.items()}
        for row in conn.execute(queries.export_deals(contact_ids))
    ]
