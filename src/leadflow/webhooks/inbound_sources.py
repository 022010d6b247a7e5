"""The senders ``/hooks/{source}`` accepts, configured by the operator: a name (the path's
``{source}``), a ``kind`` (``stripe``, ``calendly`` or ``standard``: how deliveries are signed and what
they mean), the signing secret the sender shows, the accepted clock distance (``tolerance``, seconds;
the kind's default when not given) and ``active``. The secret is write-only: no answer returns it.
Every change is audited (without the secret).

The secret is kept sealed (:mod:`leadflow.kernel.sealed`), so a copy of the database alone does not let
anyone sign deliveries. If the installation's key changes, the stored secrets no longer open: a delivery
then answers ``500 misconfigured`` (the sender retries) until each source's secret is set again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadflow.audit import service as audit
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.sealed import Sealer
from leadflow.webhooks import queries
from leadflow.webhooks.sources import KINDS
from leadflow.webhooks.sources.standard import signer

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_TOLERANCE = 3600
PURPOSE = "leadflow.webhooks.sources"  # the sealing key's purpose


@dataclass(frozen=True)
class Source:
    name: str
    kind: str
    secret: str
    tolerance: int
    active: bool
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, Any]:
        """What the API shows: everything but the secret."""
        return {k: v for k, v in self.__dict__.items() if k != "secret"}


def _sealer(ctx: AppContext) -> Sealer:
    return Sealer(ctx.secret_key, PURPOSE)


def seal(ctx: AppContext, secret: str) -> str:
    """The ``secret`` column's value for a sender's secret."""
    return _sealer(ctx).seal(secret)


def _not_found(name: str) -> NotFound:
    return NotFound(f"no webhook source {name!r}", code="source_not_found")


def _check_secret(kind: str, secret: str) -> None:
    if not secret.strip() or len(secret) > 1000:
        raise Invalid("the secret must be 1 to 1000 characters", code="invalid_secret")
    if kind == "stripe" and not secret.startswith("whsec_"):
        raise Invalid("a Stripe signing secret starts with 'whsec_'", code="invalid_secret")
    if kind == "standard":
        try:
            signer(secret)
        except ValueError as exc:
            raise Invalid(str(exc), code="invalid_secret") from None


def _check_tolerance(tolerance: int) -> None:
    if not 1 <= tolerance <= MAX_TOLERANCE:
        raise Invalid(f"tolerance is 1 to {MAX_TOLERANCE} seconds", code="invalid_tolerance")


def _source(sealer: Sealer, row: Any) -> Source:
    values = dict(row._mapping)
    what = f"the secret of webhook source {values['name']!r}"
    return Source(**{**values, "secret": sealer.unseal(values["secret"], what=what)})


def _load(ctx: AppContext, name: str) -> Source | None:
    sealer = _sealer(ctx)  # the installation key is read (or made) outside the transaction
    with ctx.db.read() as conn:
        row = conn.execute(queries.source(name)).first()
    return _source(sealer, row) if row is not None else None


def load_active(ctx: AppContext, name: str) -> Source:
    """The source deliveries to ``/hooks/{name}`` are checked against; ``404`` when unknown or
    inactive (no signature to check means no delivery to accept)."""
    source = _load(ctx, name)
    if source is None or not source.active:
        raise _not_found(name)
    return source


def get(ctx: AppContext, name: str) -> Source:
    source = _load(ctx, name)
    if source is None:
        raise _not_found(name)
    return source


def listing(ctx: AppContext) -> list[Source]:
    sealer = _sealer(ctx)
    with ctx.db.read() as conn:
        rows = conn.execute(queries.ALL_SOURCES).all()
    return [_source(sealer, row) for row in rows]


def create(
    ctx: AppContext, *, name: str, kind: str, secret: str, tolerance: int | None, active: bool, actor: str
) -> Source:
    if not NAME.fullmatch(name):
        raise Invalid("a source name is 1 to 64 of a-z, 0-9, '_' and '-'", code="invalid_name")
    if kind not in KINDS:
        raise Invalid(f"kind is one of {', '.join(KINDS)}", code="invalid_kind")
    _check_secret(kind, secret)
    tolerance = KINDS[kind].default_tolerance if tolerance is None else tolerance
    _check_tolerance(tolerance)
    now = ctx.clock.now()
    row = {"name": name, "kind": kind, "secret": seal(ctx, secret), "tolerance": tolerance, "active": active}
    with ctx.db.write() as conn:
        if conn.execute(queries.source(name)).first() is not None:
            raise Conflict(f"webhook source {name!r} exists", code="source_exists")
        conn.execute(queries.add_source({**row, "created_at": now, "updated_at": now}))
        data = {"kind": kind, "tolerance": tolerance, "active": active}
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="webhook_source.created",
            entity_type="webhook_source",
            entity_id=name,
            data=data,
        )
    return get(ctx, name)


def update(ctx: AppContext, name: str, changes: dict[str, Any], *, actor: str) -> Source:
    """Change ``secret``, ``tolerance`` and/or ``active`` (the kind is fixed: another kind is another
    source)."""
    current = get(ctx, name)
    if "secret" in changes:
        _check_secret(current.kind, changes["secret"])
        changes = {**changes, "secret": seal(ctx, changes["secret"])}
    if "tolerance" in changes:
        _check_tolerance(changes["tolerance"])
    with ctx.db.write() as conn:
        conn.execute(queries.change_source(name, {**changes, "updated_at": ctx.clock.now()}))
        data = {k: v for k, v in changes.items() if k != "secret"} | {"secret_changed": "secret" in changes}
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="webhook_source.updated",
            entity_type="webhook_source",
            entity_id=name,
            data=data,
        )
    return get(ctx, name)


def delete(ctx: AppContext, name: str, *, actor: str) -> None:
    """Remove a source; its stored deliveries stay (listed, replayable: they carry their kind)."""
    get(ctx, name)
    with ctx.db.write() as conn:
        conn.execute(queries.remove_source(name))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="webhook_source.deleted",
            entity_type="webhook_source",
            entity_id=name,
        )
