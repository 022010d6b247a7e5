"""Stage-progression rules applied from the pipeline (the rules themselves: :mod:`leadflow.crm.pipelines`).

For each batch the pipeline applies (``ContactsTouched``), the ``track`` events named by a pipeline's
rules move the contact's **open** deals in that pipeline to the rule's stage, but only forward: a
deal whose stage is at the rule's stage or later (by position) stays where it is, and won or lost
deals are not open, so nothing moves them automatically. When several rules match one contact in a
batch, the furthest stage wins (its reason is the one recorded).

When the contact has no open deal in the pipeline and the winning rule says ``create``, one deal is
opened at that stage, titled after the event; its value and currency come from the event's
``total`` / ``revenue`` / ``value`` and ``currency`` properties when they are there and valid (a
Stripe ``Order Completed`` carries ``total`` in major units and ``currency``), else 0 EUR for the team
to fill in. A new paying contact after an earlier won deal therefore gets a new won deal: every
purchase is a sale.

Writes are set-based: one query for the pipelines, one for their stages, one per pipeline and chunk of
contacts for their open deals, then one statement per kind of write for the whole batch
(:func:`leadflow.crm.deals.apply_moves`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.crm import deals, queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked
from leadflow.kernel.facts import ContactsTouched, TouchedEvent
from leadflow.kernel.ids import new_id

_MONEY_KEYS = ("total", "revenue", "value")
_LIMIT = Decimal("9999999999999999")


@dataclass(frozen=True)
class _Target:
    position: int
    stage_id: str
    stage: str
    kind: str
    reason: str | None
    create: bool
    event: TouchedEvent


def _money(properties: Any) -> tuple[Decimal, str]:
    props = properties if isinstance(properties, dict) else {}
    value = Decimal(0)
    for key in _MONEY_KEYS:
        found = props.get(key)
        if isinstance(found, int | float | str) and not isinstance(found, bool):
            try:
                candidate = Decimal(str(found)).quantize(Decimal("0.0001"))
            except (InvalidOperation, ValueError):
                continue
            if candidate.is_finite() and 0 <= candidate <= _LIMIT:
                value = candidate
                break
    currency = props.get("currency")
    code = (
        currency.upper() if isinstance(currency, str) and len(currency) == 3 and currency.isalpha() else None
    )
    return value, code or deals.DEFAULT_CURRENCY


def _targets(conn: Connection, message: ContactsTouched) -> dict[str, dict[str, _Target]]:
    """pipeline id → contact id → the furthest stage its events' rules name."""
    tracked = [e for e in message.events if e.type == "track" and e.event]
    if not tracked:
        return {}
    names = {e.event for e in tracked}
    with_rules = [
        p for p in conn.execute(queries.PIPELINES) if any(r.get("event") in names for r in p.rules or [])
    ]
    if not with_rules:
        return {}
    stages: dict[str, dict[str, Any]] = {}
    for s in conn.execute(queries.ALL_STAGES):
        stages.setdefault(s.pipeline_id, {})[s.name] = s
    found: dict[str, dict[str, _Target]] = {}
    for pipeline in with_rules:
        by_event: dict[str, list[dict[str, Any]]] = {}
        for rule in pipeline.rules or []:
            by_event.setdefault(rule.get("event"), []).append(rule)
        for event in tracked:
            for rule in by_event.get(event.event or "", []):
                stage = stages.get(pipeline.id, {}).get(str(rule.get("stage")))
                if stage is None:
                    continue
                target = _Target(
                    stage.position,
                    stage.id,
                    stage.name,
                    stage.kind,
                    rule.get("reason"),
                    bool(rule.get("create")),
                    event,
                )
                mine = found.setdefault(pipeline.id, {})
                current = mine.get(event.contact_id)
                if current is None or target.position > current.position:
                    mine[event.contact_id] = target
    return found


def apply(ctx: AppContext, conn: Connection, message: ContactsTouched) -> None:
    """Move (or open) the deals the batch's events call for; see the module."""
    targets = _targets(conn, message)
    now = message.at
    moves: list[deals.Move] = []
    new_rows: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for pipeline_id, by_contact in targets.items():
        with_deal: set[str] = set()
        for chunk in chunked(sorted(by_contact), chunk_size(conn)):
            for deal in conn.execute(queries.open_deals_of(pipeline_id, chunk)):
                with_deal.add(deal.contact_id)
                target = by_contact[deal.contact_id]
                if target.position <= deal.position:
                    continue  # never backwards (nor to where it is)
                moves.append(
                    deals.Move(
                        deal_id=deal.id,
                        contact_id=deal.contact_id,
                        pipeline_id=pipeline_id,
                        from_stage=deal.name,
                        to_stage_id=target.stage_id,
                        to_stage=target.stage,
                        to_kind=target.kind,
                        reason=target.reason if target.kind != "open" else None,
                        value=Decimal(deal.value),
                        currency=deal.currency,
                    )
                )
        for contact_id, target in sorted(by_contact.items()):
            if contact_id in with_deal or not target.create:
                continue
            value, currency = _money(target.event.properties)
            names[target.stage_id] = target.stage
            new_rows.append(
                {
                    "id": new_id(),
                    "pipeline_id": pipeline_id,
                    "stage_id": target.stage_id,
                    "status": target.kind,
                    "title": (target.event.event or "deal")[:300],
                    "value": value,
                    "currency": currency,
                    "expected_close": None,
                    "owner_id": None,
                    "contact_id": contact_id,
                    "company_id": None,
                    "reason": target.reason if target.kind != "open" else None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    if new_rows:
        deals.insert_rows(conn, new_rows, names, now, deals.SYSTEM, ctx)
    deals.apply_moves(conn, moves, now, deals.SYSTEM, ctx)


def subscriber(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The ``ContactsTouched`` handler (wired in :mod:`leadflow.runtime.context`)."""

    def handle(conn: Connection, message: ContactsTouched) -> None:
        apply(ctx, conn, message)

    return handle
