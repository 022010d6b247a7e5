"""Webhook endpoints: receivers registered by API, their secrets and rotation, a test send and replays.

Rules:

- A URL is ``http(s)`` and is checked when saved by the network guard's policy
  (:func:`leadflow.kernel.netguard.refusal`: loopback, private, link-local and metadata addresses are
  refused unless ``LEADFLOW_NETWORK_ALLOW`` admits them); the deliverer's guarded client checks again at
  connect time, after DNS resolution.
- Each endpoint has its own Standard Webhooks secret, ``whsec_`` + base64(HMAC-SHA256(installation secret
  key, "leadflow-webhook-endpoint:" + salt)). Only the random salt is stored, so the database alone does
  not reveal a secret (there is no encryption helper in the kernel; like the installation-wide secret,
  endpoint secrets are derived). The secret is returned once, when created or rotated.
- A rotation keeps the previous salt for a grace period (``LEADFLOW_WEBHOOK_ROTATION_GRACE``, 24 h by
  default, or the request's own): until it ends each delivery carries both signatures, space-separated
  in ``webhook-signature``, new first, so a receiver verifies with either secret.
- Deleting or disabling an endpoint stops its deliveries still waiting (``cancelled`` with the reason);
  a ``410`` from the receiver disables it the same way (:mod:`leadflow.webhooks.deliverer`).
- Creating, changing, deleting and rotating an endpoint, and its turning off after a ``410``, are
  audited (``webhook_endpoint.*``, entity ``webhook_endpoint``); an audit entry never holds a secret.
- Endpoint secrets derive from the installation's secret key: changing ``LEADFLOW_SECRET_KEY`` changes
  every one of them (rotate each endpoint and hand the new secrets to the receivers).
- A replay is a new delivery (a new ``webhook-id``) with the original's event and payload, naming it in
  ``replay_of``; the original is left as it was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.kernel import netguard
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.webhooks import catalogue, outbox, queries
from leadflow.webhooks.outbox import CANCELLED, QUEUED, SECRET_PREFIX

_LABEL = b"leadflow-webhook-endpoint:"
ENTITY = "webhook_endpoint"
SYSTEM = "leadflow"  # the actor of what the deliverer decides (a 410)
DELETED = "endpoint deleted"
INACTIVE = "endpoint inactive"
_PUBLIC = (
    "id",
    "url",
    "description",
    "event_types",
    "active",
    "rate_limit",
    "disabled_reason",
    "created_at",
    "updated_at",
)


def secret_for(secret_key: str, salt: str) -> str:
    """The ``whsec_`` secret of a salt (see the module docstring)."""
    digest = hmac.new(secret_key.encode(), _LABEL + salt.encode(), hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def secrets_of(secret_key: str, endpoint: Any, now: datetime) -> list[str]:
    """The secrets a delivery to ``endpoint`` (a row) is signed with now: the current one, and the
    previous one while its rotation's grace period lasts."""
    found = [secret_for(secret_key, endpoint.secret_salt)]
    if endpoint.previous_salt and endpoint.previous_until is not None and endpoint.previous_until > now:
        found.append(secret_for(secret_key, endpoint.previous_salt))
    return found


def _view(row: Any, now: datetime) -> dict[str, Any]:
    view = {name: getattr(row, name) for name in _PUBLIC}
    rotating = row.previous_salt and row.previous_until is not None and row.previous_until > now
    view["rotation_ends_at"] = row.previous_until if rotating else None
    return view


def check_url(ctx: AppContext, url: str) -> str:
    """``url`` if it may be saved: ``http``/``https`` with a host the guard's policy admits."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid("url must be an http or https address with a host", code="invalid_url")
    refused = netguard.refusal(url, ctx.settings)
    if refused is not None:
        raise Invalid(f"url refused: {refused}", code="url_refused")
    return url


def check_types(types: Sequence[str]) -> list[str]:
    """The subscribed types, if every one is in the catalogue (or ``*``)."""
    if not types:
        raise Invalid("event_types must name at least one type (or '*')", code="invalid_event_types")
    unknown = catalogue.unknown(list(types))
    if unknown:
        raise Invalid(f"unknown event types: {', '.join(unknown)}", code="unknown_event_type")
    return list(dict.fromkeys(types))


def _check_rate(rate: float | None) -> float | None:
    if rate is not None and rate <= 0:
        raise Invalid("rate_limit must be a positive number of deliveries per second", code="invalid_rate")
    return rate


def _row(conn: Connection, endpoint_id: str) -> Any:
    row = conn.execute(queries.endpoint(endpoint_id)).first()
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id} not found", code="endpoint_not_found")
    return row


def create(
    ctx: AppContext,
    *,
    url: str,
    event_types: Sequence[str],
    description: str = "",
    active: bool = True,
    rate_limit: float | None = None,
    actor: str = SYSTEM,
) -> tuple[dict[str, Any], str]:
    """Register an endpoint; returns its view and its secret (shown this once)."""
    values = {
        "url": check_url(ctx, url),
        "event_types": check_types(event_types),
        "description": description,
        "active": active,
        "rate_limit": _check_rate(rate_limit),
    }
    key = ctx.secret_key  # outside the transaction: it may be generated on first read
    now = ctx.clock.now()
    endpoint_id, salt = new_id(), secrets.token_urlsafe(24)
    row = values | {"id": endpoint_id, "secret_salt": salt, "created_at": now, "updated_at": now}
    with ctx.db.write() as conn:
        conn.execute(queries.insert_endpoint(row))
        _audit(conn, ctx, actor, "created", endpoint_id, {"url": url, "event_types": values["event_types"]})
        saved = _row(conn, endpoint_id)
    return _view(saved, now), secret_for(key, salt)


def get(ctx: AppContext, endpoint_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return _view(_row(conn, endpoint_id), ctx.clock.now())


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[dict[str, Any]]:
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        return [_view(row, now) for row in conn.execute(queries.endpoints_page(after, limit))]


def _audit(
    conn: Connection, ctx: AppContext, actor: str, action: str, endpoint_id: str, data: dict[str, Any]
) -> None:
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action=f"{ENTITY}.{action}",
        entity_type=ENTITY,
        entity_id=endpoint_id,
        data=data,
    )


def update(
    ctx: AppContext, endpoint_id: str, changes: dict[str, Any], *, actor: str = SYSTEM
) -> dict[str, Any]:
    """Change the given fields (url, description, event_types, active, rate_limit). Turning an endpoint
    off stops its waiting deliveries; turning it on clears why it was off."""
    values = dict(changes)
    if "url" in values:
        values["url"] = check_url(ctx, values["url"])
    if "event_types" in values:
        values["event_types"] = check_types(values["event_types"])
    if "rate_limit" in values:
        values["rate_limit"] = _check_rate(values["rate_limit"])
    if values.get("active") is True:
        values["disabled_reason"] = None
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        _row(conn, endpoint_id)
        conn.execute(queries.update_endpoint(endpoint_id, values | {"updated_at": now}))
        _audit(conn, ctx, actor, "updated", endpoint_id, dict(changes))
        if values.get("active") is False:
            conn.execute(queries.cancel_endpoint_queued(endpoint_id, INACTIVE))
        return _view(_row(conn, endpoint_id), now)


def delete(ctx: AppContext, endpoint_id: str, *, actor: str = SYSTEM) -> None:
    """Remove an endpoint; its waiting deliveries are cancelled, its delivery log stays."""
    with ctx.db.write() as conn:
        gone = _row(conn, endpoint_id)
        _audit(conn, ctx, actor, "deleted", endpoint_id, {"url": gone.url})
        conn.execute(queries.cancel_endpoint_queued(endpoint_id, DELETED))
        conn.execute(queries.delete_endpoint(endpoint_id))


def rotate(
    ctx: AppContext, endpoint_id: str, *, grace: timedelta | None = None, actor: str = SYSTEM
) -> tuple[dict[str, Any], str]:
    """A new secret (returned this once); the current one keeps signing beside it for ``grace``
    (default ``LEADFLOW_WEBHOOK_ROTATION_GRACE``)."""
    if grace is None:
        grace = timedelta(seconds=ctx.settings.webhook_rotation_grace)
    if grace < timedelta(0):
        raise Invalid("grace must not be negative", code="invalid_grace")
    key = ctx.secret_key
    now = ctx.clock.now()
    salt = secrets.token_urlsafe(24)
    with ctx.db.write() as conn:
        current = _row(conn, endpoint_id)
        values = {
            "secret_salt": salt,
            "previous_salt": current.secret_salt,
            "previous_until": now + grace,
            "updated_at": now,
        }
        conn.execute(queries.update_endpoint(endpoint_id, values))
        _audit(conn, ctx, actor, "secret_rotated", endpoint_id, {"grace_seconds": grace.total_seconds()})
        saved = _row(conn, endpoint_id)
    return _view(saved, now), secret_for(key, salt)


def _require_active(row: Any) -> None:
    if not row.active:
        reason = f" ({row.disabled_reason})" if row.disabled_reason else ""
        raise Conflict(f"webhook endpoint {row.id} is inactive{reason}", code="endpoint_inactive")


def send_test(ctx: AppContext, endpoint_id: str) -> str:
    """Queue a ``webhook.test`` delivery to the endpoint, due now; returns its id."""
    delivery_id = new_id()
    payload = {"contact": None, "message": "leadflow webhook test", "endpoint_id": endpoint_id}
    with ctx.db.write() as conn:
        row = _row(conn, endpoint_id)
        _require_active(row)
        item = {"id": delivery_id, "key": f"test:{delivery_id}", "url": row.url, "event": catalogue.TEST}
        outbox.enqueue_many(
            conn, ctx, [item | {"payload": payload, "at": ctx.clock.now(), "endpoint_id": row.id}]
        )
    return delivery_id


def _replica(original: Any, now: datetime) -> dict[str, Any]:
    delivery_id = new_id()
    return {
        "id": delivery_id,
        "key": f"replay:{original.id}:{delivery_id}",
        "url": original.url,
        "event": original.event,
        "payload": original.payload,
        "at": now,
        "contact_id": original.contact_id,
        "journey_id": original.journey_id,
        "run_id": original.run_id,
        "endpoint_id": original.endpoint_id,
        "replay_of": original.id,
    }


def _check_target(conn: Connection, endpoint_id: str | None) -> None:
    if endpoint_id is not None:
        _require_active(_row(conn, endpoint_id))


def replay(ctx: AppContext, delivery_id: str) -> str:
    """Send a delivery again as a new delivery (new ``webhook-id``); returns the new id."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        original = conn.execute(queries.delivery(delivery_id)).first()
        if original is None:
            raise NotFound(f"webhook delivery {delivery_id} not found", code="delivery_not_found")
        if original.status == QUEUED:
            raise Conflict(f"webhook delivery {delivery_id} is still queued", code="delivery_queued")
        if original.status == CANCELLED and original.error == outbox.ERASED:
            raise Conflict(
                f"webhook delivery {delivery_id} is about an erased contact", code="delivery_erased"
            )
        _check_target(conn, original.endpoint_id)
        item = _replica(original, now)
        outbox.enqueue_many(conn, ctx, [item])
    return str(item["id"])


def replay_failed(ctx: AppContext, endpoint_id: str, since: datetime) -> list[str]:
    """Replay every failed delivery to the endpoint created since ``since``; returns the new ids."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        _check_target(conn, endpoint_id)
        items = [_replica(row, now) for row in conn.execute(queries.failed_since(endpoint_id, since))]
        outbox.enqueue_many(conn, ctx, items)
    return [str(item["id"]) for item in items]


def disable(conn: Connection, ctx: AppContext, endpoint_id: str, reason: str) -> None:
    """Turn the endpoint off in the caller's transaction (audited) and stop its waiting deliveries."""
    if conn.execute(queries.disable_endpoint(endpoint_id, reason, ctx.clock.now())).rowcount:
        _audit(conn, ctx, SYSTEM, "disabled", endpoint_id, {"reason": reason})
    conn.execute(queries.cancel_endpoint_queued(endpoint_id, reason))


def of_ids(conn: Connection, endpoint_ids: Sequence[str]) -> dict[str, Any]:
    """The endpoints (rows) of these ids that exist, by id."""
    if not endpoint_ids:
        return {}
    return {row.id: row for row in conn.execute(queries.endpoints_of(sorted(set(endpoint_ids))))}


def exists(conn: Connection, endpoint_id: str) -> None:
    """Raise ``NotFound`` unless the endpoint exists."""
    _row(conn, endpoint_id)


def active(conn: Connection) -> list[sa.Row[Any]]:
    """Every active endpoint's id, URL and subscribed types."""
    return list(conn.execute(queries.ACTIVE_ENDPOINTS))
