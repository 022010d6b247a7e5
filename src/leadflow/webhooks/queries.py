"""The statements of the webhooks domain: the outgoing delivery outbox (queueing, the operator's view,
a retry, GDPR erasure and export, the deliverer's claim and record) and the incoming providers' replay
tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Executable

from leadflow.kernel.db import insert_for
from leadflow.webhooks.models import inbound_webhooks as inbound
from leadflow.webhooks.models import webhook_deliveries as deliveries
from leadflow.webhooks.models import webhook_endpoints as endpoints
from leadflow.webhooks.models import webhook_replay_tokens as tokens
from leadflow.webhooks.models import webhook_sources as sources

QUEUED = "queued"
FAILED = "failed"
CANCELLED = "cancelled"

# --- the outbox -------------------------------------------------------------------------------------


def enqueue(dialect: str, rows: Sequence[dict[str, Any]]) -> Any:
    """Insert deliveries, skipping a ``key`` already queued (or sent); returns the new ids."""
    statement = insert_for(dialect, deliveries).on_conflict_do_nothing(index_elements=["key"])
    return statement.returning(deliveries.c.id).values(list(rows))


def page(status: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    """Deliveries in id order (oldest first), optionally of one status, after the id ``after``."""
    query = sa.select(deliveries).order_by(deliveries.c.id).limit(limit)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    return query.where(deliveries.c.id > after) if after else query


def delivery(delivery_id: str) -> sa.Select[Any]:
    return sa.select(deliveries).where(deliveries.c.id == delivery_id)


def status_of(delivery_id: str) -> sa.Select[Any]:
    return sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)


def requeue_failed(delivery_id: str, now: datetime) -> sa.Update:
    """A failed delivery queued again now, with a fresh retry schedule (attempts from 0)."""
    return (
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.status == FAILED)
        .values(status=QUEUED, due_at=now, attempts=0, response_code=None, error=None)
    )


def clear_payloads(contact_ids: Sequence[str]) -> sa.Update:
    """GDPR erasure: every delivery about the people loses its payload and the receiver's answers."""
    mine = deliveries.c.contact_id.in_(list(contact_ids))
    return deliveries.update().where(mine).values(payload={}, error=None, response_body=None)


def cancel_queued(contact_ids: Sequence[str], reason: str) -> sa.Update:
    mine = deliveries.c.contact_id.in_(list(contact_ids))
    return (
        deliveries.update().where(mine, deliveries.c.status == QUEUED).values(status=CANCELLED, error=reason)
    )


#: A merge: the merged contact's deliveries name the survivor (executed with every ``loser, survivor``).
MOVE_TO_SURVIVOR = (
    deliveries.update()
    .where(deliveries.c.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)


def of_contacts(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(deliveries).where(deliveries.c.contact_id.in_(list(contact_ids))).order_by(deliveries.c.id)
    )


# --- the deliverer ----------------------------------------------------------------------------------

_d = deliveries.c
NEXT_DUE = sa.select(sa.func.min(_d.due_at)).where(_d.status == QUEUED)  # min() keeps the UTC type
RECORDED = (
    "status",
    "due_at",
    "response_code",
    "error",
    "delivered_at",
    "request_headers",
    "response_headers",
    "response_body",
    "duration_ms",
)
#: One delivery's outcome, guarded by its claim (``b_id``, ``b_attempts``): values ``v_<column>``.
RECORD = (
    deliveries.update()
    .where(_d.id == sa.bindparam("b_id"), _d.attempts == sa.bindparam("b_attempts"), _d.status == QUEUED)
    .values({name: sa.bindparam(f"v_{name}", type_=_d[name].type) for name in RECORDED})
)


#: :data:`RECORD` on PostgreSQL: a pass's outcomes as one JSON document (``:rows``, ordered by id, the
#: order the rows are locked in), one statement instead of one update a delivery.
RECORD_JSON = sa.text(
    "UPDATE webhook_deliveries AS d SET status = r.status, due_at = r.due_at, "
    "response_code = r.response_code, error = r.error, delivered_at = r.delivered_at, "
    "request_headers = r.request_headers, response_headers = r.response_headers, "
    "response_body = r.response_body, duration_ms = r.duration_ms "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(id varchar, attempts integer, status varchar, "
    "due_at timestamptz, response_code integer, error text, delivered_at timestamptz, "
    "request_headers jsonb, response_headers jsonb, response_body text, duration_ms integer) "
    "WHERE d.id = r.id AND d.attempts = r.attempts AND d.status = 'queued'"
)


def claim(dialect: str, now: datetime, limit: int) -> sa.Select[Any]:
    """Due queued deliveries, oldest due first; locked, skipping those another worker holds, on
    PostgreSQL."""
    query = (
        sa.select(_d.id, _d.url, _d.event, _d.payload, _d.created_at, _d.attempts, _d.endpoint_id)
        .where(_d.status == QUEUED, _d.due_at <= now)
        .order_by(_d.due_at)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query


def lease(delivery_ids: Sequence[str], until: datetime) -> sa.Update:
    """The claimed deliveries fall due again at the lease's end, one attempt more."""
    return (
        deliveries.update()
        .where(_d.id.in_(list(delivery_ids)))
        .values(due_at=until, attempts=_d.attempts + 1)
    )


def renew(delivery_ids: Sequence[str], attempts: int, until: datetime) -> sa.Update:
    """Claims still being sent (``attempts`` the count their claim gave them) held until ``until``; a
    claim another deliverer took over since (its count moved on) is left alone."""
    return (
        deliveries.update()
        .where(_d.id.in_(list(delivery_ids)), _d.attempts == attempts, _d.status == QUEUED)
        .values(due_at=until)
    )


#: A claimed delivery put back untried (its endpoint's rate limit): due at ``due``, the attempt uncounted.
DEFER = (
    deliveries.update()
    .where(_d.id == sa.bindparam("b_id"), _d.attempts == sa.bindparam("b_attempts"), _d.status == QUEUED)
    .values(due_at=sa.bindparam("v_due_at", type_=_d.due_at.type), attempts=_d.attempts - 1)
)


# --- endpoints --------------------------------------------------------------------------------------

_e = endpoints.c
ACTIVE_ENDPOINTS = sa.select(_e.id, _e.url, _e.event_types).where(_e.active.is_(True)).order_by(_e.id)


def insert_endpoint(row: dict[str, Any]) -> sa.Insert:
    return endpoints.insert().values(**row)


def endpoint(endpoint_id: str) -> sa.Select[Any]:
    return sa.select(endpoints).where(_e.id == endpoint_id)


def endpoints_of(endpoint_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(endpoints).where(_e.id.in_(list(endpoint_ids)))


def endpoints_page(after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(endpoints).order_by(_e.id).limit(limit)
    return query.where(_e.id > after) if after else query


def update_endpoint(endpoint_id: str, values: dict[str, Any]) -> sa.Update:
    return endpoints.update().where(_e.id == endpoint_id).values(**values)


def delete_endpoint(endpoint_id: str) -> sa.Delete:
    return endpoints.delete().where(_e.id == endpoint_id)


def disable_endpoint(endpoint_id: str, reason: str, now: datetime) -> sa.Update:
    """Turn an endpoint off (a ``410``), if it is still on."""
    return (
        endpoints.update()
        .where(_e.id == endpoint_id, _e.active.is_(True))
        .values(active=False, disabled_reason=reason, updated_at=now)
    )


def cancel_endpoint_queued(endpoint_id: str, reason: str) -> sa.Update:
    """The endpoint's deliveries still waiting stop, with the reason."""
    return (
        deliveries.update()
        .where(_d.endpoint_id == endpoint_id, _d.status == QUEUED)
        .values(status=CANCELLED, error=reason)
    )


def endpoint_deliveries(
    endpoint_id: str, status: str | None, after: str | None, limit: int
) -> sa.Select[Any]:
    """An endpoint's deliveries, newest first, optionally of one status, before the id ``after``."""
    query = sa.select(deliveries).where(_d.endpoint_id == endpoint_id).order_by(_d.id.desc()).limit(limit)
    if status is not None:
        query = query.where(_d.status == status)
    return query.where(_d.id < after) if after else query


def failed_since(endpoint_id: str, since: datetime) -> sa.Select[Any]:
    """The endpoint's failed deliveries created since ``since``, oldest first."""
    return (
        sa.select(deliveries)
        .where(_d.endpoint_id == endpoint_id, _d.status == FAILED, _d.created_at >= since)
        .order_by(_d.id)
    )


def status_counts(endpoint_id: str, since: datetime) -> sa.Select[Any]:
    """How many of the endpoint's deliveries created since ``since`` are in each status."""
    return (
        sa.select(_d.status, sa.func.count())
        .where(_d.endpoint_id == endpoint_id, _d.created_at >= since)
        .group_by(_d.status)
    )


def _timed(endpoint_id: str, since: datetime) -> Any:
    return sa.and_(_d.endpoint_id == endpoint_id, _d.created_at >= since, _d.duration_ms.is_not(None))


def timed_count(endpoint_id: str, since: datetime) -> sa.Select[Any]:
    """How many of the endpoint's deliveries since ``since`` have a measured last attempt."""
    return sa.select(sa.func.count()).where(_timed(endpoint_id, since))


def nth_duration(endpoint_id: str, since: datetime, rank: int) -> sa.Select[Any]:
    """The ``rank``-th smallest attempt duration (0-based): one row of an index range, not a sort in
    Python."""
    return (
        sa.select(_d.duration_ms)
        .where(_timed(endpoint_id, since))
        .order_by(_d.duration_ms)
        .limit(1)
        .offset(rank)
    )


# --- incoming providers' replay tokens ----------------------------------------------------------------


def prune_tokens(dialect: str, now: datetime, batch: int) -> sa.Delete:
    """Delete up to ``batch`` tokens past their expiry (``SKIP LOCKED`` on PostgreSQL: concurrent
    requests never wait on each other's pruning)."""
    expired = (
        sa.select(tokens.c.source, tokens.c.token)
        .where(tokens.c.expires_at < now)
        .order_by(tokens.c.expires_at)
        .limit(batch)
    )
    if dialect == "postgresql":
        expired = expired.with_for_update(skip_locked=True)
    return tokens.delete().where(sa.tuple_(tokens.c.source, tokens.c.token).in_(expired))


def record_token(dialect: str, row: dict[str, Any]) -> Any:
    """Insert a token unless it is known; returns the token when it was new."""
    statement = insert_for(dialect, tokens).values(**row)
    return statement.on_conflict_do_nothing(index_elements=["source", "token"]).returning(tokens.c.token)


def token_digest(source: str, token: str) -> sa.Select[Any]:
    return sa.select(tokens.c.body_digest).where(tokens.c.source == source, tokens.c.token == token)


# --- incoming webhooks: sources and deliveries (webhooks.inbound) --------------------------------------

PROCESSED = "processed"


def source(name: str) -> sa.Select[Any]:
    return sa.select(sources).where(sources.c.name == name)


ALL_SOURCES = sa.select(sources).order_by(sources.c.name)


def add_source(row: dict[str, Any]) -> sa.Insert:
    return sources.insert().values(**row)


def change_source(name: str, values: dict[str, Any]) -> sa.Update:
    return sources.update().where(sources.c.name == name).values(**values)


def remove_source(name: str) -> sa.Delete:
    return sources.delete().where(sources.c.name == name)


def record_inbound(dialect: str, row: dict[str, Any]) -> Any:
    """Store a verified delivery unless its sender id was seen for that source; returns the new id."""
    statement = insert_for(dialect, inbound).values(**row)
    statement = statement.on_conflict_do_nothing(index_elements=["source", "sender_id"])
    return statement.returning(inbound.c.id)


def inbound_of_sender(source_name: str, sender_id: str) -> sa.Select[Any]:
    return sa.select(inbound.c.id).where(inbound.c.source == source_name, inbound.c.sender_id == sender_id)


def inbound_one(inbound_id: str, *, lock: bool = False) -> sa.Select[Any]:
    query = sa.select(inbound).where(inbound.c.id == inbound_id)
    return query.with_for_update() if lock else query


def inbound_page(
    source_name: str | None, status: str | None, before: str | None, limit: int
) -> sa.Select[Any]:
    """Deliveries newest first (ids are time-ordered), optionally of one source and status, before the
    id ``before``."""
    query = sa.select(inbound).order_by(inbound.c.id.desc()).limit(limit)
    if source_name is not None:
        query = query.where(inbound.c.source == source_name)
    if status is not None:
        query = query.where(inbound.c.status == status)
    return query.where(inbound.c.id < before) if before else query


def settle_inbound(inbound_id: str, values: dict[str, Any]) -> sa.Update:
    """A replayed delivery's outcome, only while it is still ``failed`` (two replays cannot both win)."""
    return inbound.update().where(inbound.c.id == inbound_id, inbound.c.status == FAILED).values(**values)


def _about(emails: Sequence[str], anonymous_ids: Sequence[str]) -> sa.ColumnElement[bool]:
    """Deliveries about a person: by the address or anonymous id a processed one recorded, and failed
    ones (which recorded neither) whose body mentions the address (a scan of the failed few only)."""
    body = sa.func.lower(sa.cast(inbound.c.body, sa.Text))
    mentioned = [body.contains(email, autoescape=True) for email in emails]
    failed = sa.and_(inbound.c.status == FAILED, sa.or_(*mentioned)) if mentioned else sa.false()
    recorded = sa.or_(inbound.c.email.in_(list(emails)), inbound.c.anonymous_id.in_(list(anonymous_ids)))
    return sa.or_(recorded, failed)


def redact_inbound(emails: Sequence[str], anonymous_ids: Sequence[str]) -> sa.Update:
    """GDPR erasure: deliveries about the person keep their sender id, status and times, lose the rest."""
    about = _about(emails, anonymous_ids)
    cleared = {"error": None, "email": None, "anonymous_id": None, "subject": None}
    return inbound.update().where(about).values(body={}, **cleared)


def inbound_about(emails: Sequence[str], anonymous_ids: Sequence[str]) -> sa.Select[Any]:
    """A person's deliveries (by address, or by the anonymous id their events carried), oldest first."""
    about = _about(emails, anonymous_ids)
    columns = [c for c in inbound.c if c.name not in ("email", "anonymous_id", "subject")]
    return sa.select(*columns).where(about).order_by(inbound.c.id)


def email_of_subject(source_name: str, subject: str) -> sa.Select[Any]:
    """The address an earlier processed delivery of this source gave for the sender's id of a person."""
    return (
        sa.select(inbound.c.email)
        .where(inbound.c.source == source_name, inbound.c.subject == subject, inbound.c.email.is_not(None))
        .order_by(inbound.c.id.desc())
        .limit(1)
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)
_ROW = {
    "id": "d1",
    "key": "k",
    "url": "https://example.com",
    "event": "e",
    "payload": {},
    "status": QUEUED,
    "due_at": _AT,
    "attempts": 0,
    "created_at": _AT,
    "contact_id": None,
    "journey_id": None,
    "run_id": None,
    "endpoint_id": None,
    "replay_of": None,
}
_ENDPOINT = {
    "id": "e1",
    "url": "https://example.com",
    "description": "",
    "event_types": ["*"],
    "active": True,
    "rate_limit": None,
    "secret_salt": "s",
    "created_at": _AT,
    "updated_at": _AT,
}
_TOKEN = {
    "source": "mailgun",
    "token": "t",
    "body_digest": "d",
    "seen_at": _AT,
    "expires_at": _AT + timedelta(minutes=5),
}
SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: [enqueue(d, [_ROW]) for d in ("postgresql",)],
    lambda: [page(QUEUED, "d0", 10), page(None, None, 10), delivery("d1"), status_of("d1")],
    lambda: [
        requeue_failed("d1", _AT),
        clear_payloads(["c1"]),
        cancel_queued(["c1"], "x"),
        of_contacts(["c1"]),
    ],
    lambda: [prune_tokens(d, _AT, 100) for d in ("sqlite", "postgresql")],
    lambda: [record_token(d, _TOKEN) for d in ("postgresql",)],
    lambda: [token_digest("mailgun", "t")],
    lambda: [claim(d, _AT, 10) for d in ("sqlite", "postgresql")] + [lease(["d1"], _AT)],
    lambda: [RECORD_JSON],
    lambda: [source("s"), ALL_SOURCES, add_source({"name": "s"}), change_source("s", {"active": False})],
    lambda: [remove_source("s"), inbound_of_sender("s", "e"), inbound_one("i", lock=True)],
    lambda: [record_inbound("postgresql", {"id": "i", "source": "s", "sender_id": "e", "body": {}})],
    lambda: [inbound_page("s", FAILED, "i", 10), inbound_page(None, None, None, 10)],
    lambda: [settle_inbound("i", {"status": PROCESSED}), redact_inbound(["a@b.c"], ["x"])],
    lambda: [email_of_subject("s", "cus_1"), inbound_about(["a@b.c"], ["x"]), inbound_about([], ["x"])],
    lambda: [insert_endpoint(_ENDPOINT), endpoint("e1"), endpoints_of(["e1"]), endpoints_page("e0", 10)],
    lambda: [
        update_endpoint("e1", {"active": False}),
        delete_endpoint("e1"),
        disable_endpoint("e1", "x", _AT),
    ],
    lambda: [cancel_endpoint_queued("e1", "x"), endpoint_deliveries("e1", FAILED, "d9", 10)],
    lambda: [
        failed_since("e1", _AT),
        status_counts("e1", _AT),
        timed_count("e1", _AT),
        nth_duration("e1", _AT, 3),
    ],
]
