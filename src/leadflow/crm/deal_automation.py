"""What automations (journey steps) do to deals: set-based over a batch, in the caller's transaction,
idempotent under retry, written by the deals API's own writes (:func:`leadflow.crm.deals.insert_rows`,
:func:`leadflow.crm.deals.apply_moves`): audited, ``deal.created`` / ``deal.stage_changed`` events of
the contact, so webhooks, segments, journeys and the lead's timeline see them as any other deal change.

- **Opening** (:func:`open_deals`): the contact becomes a lead and gets a deal in the pipeline at the
  stage, owned by the lead's owner, unless it already has an *open* deal in that pipeline — that one is
  kept (``exists``: one open deal per contact and pipeline, as the progression rules keep it). The new
  deal's id is derived from the caller's idempotency key (and a moment fixed with it), so the same
  step run again after a crash finds its deal (``done``) and can never open a second one.
- **Moving** (:func:`move_deals`): each open deal of the contact in the pipeline goes to the stage. A
  deal already there stays (``unchanged``), as does one at a later stage unless ``backwards`` (like
  the progression rules, an automation moves forward by default); won and lost deals are not open, so
  they are never moved; a contact with no open deal there is ``no_deal`` — nothing is opened. A step
  run again finds its deals at the stage already, so a move is made (and emitted) once.
- Moving to (or opening at) a ``won`` or ``lost`` stage needs a reason, as in the API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Connection
from ulid import ULID

from leadflow.crm import automation, deals, pipelines, queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked
from leadflow.kernel.errors import Invalid

MAX_VALUE = Decimal("9999999999999999")


@dataclass(frozen=True)
class DealTarget:
    """A pipeline and one of its stages (with the reason a won or lost stage needs)."""

    pipeline_id: str
    stage: pipelines.Stage
    reason: str | None


@dataclass(frozen=True)
class NewDeal:
    """A deal an automation opens; ``key`` (with ``at``, a moment that is the same in every retry,
    such as the run's entry) makes it idempotent."""

    contact_id: str
    title: str
    value: Decimal
    currency: str
    key: str
    at: datetime
    expected_close: date | None = None


def target(conn: Connection, pipeline: str | None, stage: str | None, reason: str | None) -> DealTarget:
    """The pipeline (id or name; the default one when None) and its stage (id or name; the first open
    stage when None). 422 ``pipeline_not_found``, ``pipeline_required`` (no default pipeline),
    ``stage_not_found``, ``reason_required`` (a won or lost stage without a reason)."""
    pipeline_id = pipelines.find(conn, pipeline)
    found = pipelines.stages(conn, pipeline_id)
    chosen = (
        next((s for s in found if s.kind == "open"), None)
        if stage is None
        else next((s for s in found if stage in (s.id, s.name)), None)
    )
    if chosen is None:
        raise Invalid(f"no stage {stage!r} in pipeline {pipeline or pipeline_id}", code="stage_not_found")
    kept = None
    if chosen.kind != "open":
        if not (reason and reason.strip()):
            raise Invalid(
                f"a deal moved to {chosen.name!r} ({chosen.kind}) needs a reason", code="reason_required"
            )
        kept = reason.strip()
    return DealTarget(pipeline_id, chosen, kept)


def money(value: Any, currency: Any) -> tuple[Decimal, str]:
    """A deal's value (at most 4 decimal places, not negative) and ISO 4217 currency from text (a
    rendered template); 422 ``invalid_value`` / ``invalid_currency`` saying what was given."""
    try:
        amount = Decimal(str(value).strip()).quantize(Decimal("0.0001"))
    except (InvalidOperation, ValueError):
        raise Invalid(f"the deal value {value!r} is not a number", code="invalid_value") from None
    if not (amount.is_finite() and 0 <= amount <= MAX_VALUE):
        raise Invalid(f"the deal value {value!r} is out of range", code="invalid_value")
    code = str(currency).strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise Invalid(f"{currency!r} is not an ISO 4217 currency like EUR", code="invalid_currency")
    return amount, code


def keyed_id(key: str, at: datetime) -> str:
    """A deal id (a ULID: ``at`` in milliseconds, then 80 bits of the key's SHA-256), the same for the
    same key and moment."""
    millis = int(at.timestamp() * 1000).to_bytes(6, "big")
    return str(ULID.from_bytes(millis + hashlib.sha256(key.encode()).digest()[:10]))


def open_deals(
    conn: Connection, ctx: AppContext, to: DealTarget, wanted: Sequence[NewDeal], *, actor: str
) -> dict[str, str]:
    """Open the deals (see the module); answers each key's outcome: ``created``, ``done`` (this key
    opened it before) or ``exists`` (the contact's open deal in the pipeline was kept)."""
    if not wanted:
        return {}
    now = ctx.clock.now()
    ids = sorted({w.contact_id for w in wanted})
    automation.ensure_leads(conn, ids, now)
    owners: dict[str, str | None] = {}
    held: list[dict[str, Any]] = []
    for chunk in chunked(ids, chunk_size(conn)):
        owners.update({row.contact_id: row.owner_id for row in conn.execute(queries.leads_of(chunk))})
        held += deals.export(conn, chunk)
    existing = {d["id"] for d in held}
    open_here = {
        d["contact_id"] for d in held if d["pipeline_id"] == to.pipeline_id and d["status"] == "open"
    }
    answers: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for new in wanted:
        deal_id = keyed_id(new.key, new.at)
        if deal_id in existing:
            answers[new.key] = "done"
        elif new.contact_id in open_here:
            answers[new.key] = "exists"
        else:
            answers[new.key] = "created"
            open_here.add(new.contact_id)
            rows.append(
                {
                    "id": deal_id,
                    "pipeline_id": to.pipeline_id,
                    "stage_id": to.stage.id,
                    "status": to.stage.kind,
                    "title": new.title.strip()[:300],
                    "value": new.value,
                    "currency": new.currency,
                    "expected_close": new.expected_close,
                    "owner_id": owners.get(new.contact_id),
                    "contact_id": new.contact_id,
                    "company_id": None,
                    "reason": to.reason,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if rows:
        deals.insert_rows(conn, rows, {to.stage.id: to.stage.name}, now, actor, ctx)
    return answers


def move_deals(
    conn: Connection,
    ctx: AppContext,
    to: DealTarget,
    contact_ids: Sequence[str],
    *,
    backwards: bool = False,
    actor: str,
) -> dict[str, str]:
    """Move the contacts' open deals in the pipeline (see the module); answers each contact's outcome:
    ``moved``, ``unchanged`` or ``no_deal``."""
    answers = dict.fromkeys(contact_ids, "no_deal")
    moves: list[deals.Move] = []
    for chunk in chunked(sorted(set(contact_ids)), chunk_size(conn)):
        for deal in conn.execute(queries.open_deals_of(to.pipeline_id, chunk)):
            stays = deal.stage_id == to.stage.id or (deal.position > to.stage.position and not backwards)
            if stays:
                answers[deal.contact_id] = "moved" if answers[deal.contact_id] == "moved" else "unchanged"
                continue
            answers[deal.contact_id] = "moved"
            moves.append(
                deals.Move(
                    deal_id=deal.id,
                    contact_id=deal.contact_id,
                    pipeline_id=to.pipeline_id,
                    from_stage=deal.name,
                    to_stage_id=to.stage.id,
                    to_stage=to.stage.name,
                    to_kind=to.stage.kind,
                    reason=to.reason,
                    value=Decimal(deal.value),
                    currency=deal.currency,
                )
            )
    deals.apply_moves(conn, moves, ctx.clock.now(), actor, ctx)
    return answers
