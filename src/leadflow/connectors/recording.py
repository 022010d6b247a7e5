"""What a connector batch leaves behind: the rows' fate, identity links, the audit, the conflicts.

**Record** (:meth:`Recorder._record`): identity links, one audit row per field written (old value: what
was last written; new value) and one summary row per record (outcome, lag from the first change), the
conflicts, and the rows' fate: written → deleted if no newer change arrived meanwhile (else due again at
once); refused for good (4xx, blocked by the network guard) → dead at once with the reason; worth
retrying (5xx, timeout, connection lost) → due after the worker's ``SCHEDULE`` (exponential, ±10 %
jitter), dead after its last step; ``429`` → due after ``Retry-After``, uncounted.

**Attempts count at send, not at claim.** A row's ``attempts`` grows by one only when a request carrying
its record was sent and failed (5xx, timeout, connection lost, a refusal; a client that could not be made
— a Salesforce login — or the owners list read for a batch that maps an owner counts too, as the vendor
was asked for that batch; a batch with no owner to map reads none). A claim counts nothing: a batch that
waited for tokens, a row whose lease ran out and was taken over by another worker, a worker that died
before its request — none spends an attempt, so a row is dead-lettered only after the vendor failed it on
every step of the schedule. Nor does a row of a failed batch that no sent request carried
(:func:`carried_by`: its contact unchanged, or the failure came at a kind before any of its own — the
batch's companies refused before its contacts were sent): it is retried uncounted ("not sent"). A
``429`` is uncounted as before. The fate's update — the delete of a written row and the release of one a
newer change kept too — holds only while this worker's lease (``leased_until`` as claimed or renewed) is
the row's: a row another worker took over after the lease ran out (its pass outlived the lease) is left
to it, never deleted under it nor released to a third worker while its write is in flight.

On PostgreSQL a batch's usual record (rows written, links, audit) is one statement, not a transaction
(:data:`~leadflow.connectors.store.RECORD_JSON`); retries, dead letters and conflicts add theirs in one
transaction with it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.connectors import config, queries, store, sync
from leadflow.connectors.vendor import (
    ACTIVITY,
    COMPANY,
    CONFLICT,
    CONTACT,
    DEAL,
    FAILED,
    OK,
    RETRY,
    Record,
    Written,
)
from leadflow.kernel import jsonutil
from leadflow.kernel.context import AppContext

log = logging.getLogger("leadflow.connectors.worker")


@dataclass(frozen=True)
class Claimed:
    id: int
    connector_id: str
    kind: str
    local_id: str
    contact_id: str | None
    payload: Any
    version: int
    attempts: int  # counted so far (a request that carried the row and failed), not this one
    enqueued_at: datetime
    leased_until: datetime  # the end of this worker's lease on the row


@dataclass
class Fate:
    """What becomes of one claimed row (``uncount``: no attempt spent — a 429, the bucket)."""

    done: bool = False
    retry_after: timedelta | None = None
    uncount: bool = False
    dead: bool = False
    error: str | None = None


def fate_of(answer: Written | None) -> Fate:
    """What becomes of a row from the vendor's answer for its record (none: tried again)."""
    if answer is None:
        return Fate(error="no answer for this record")
    if answer.outcome == OK:
        return Fate(done=True)
    if answer.outcome == RETRY:
        return Fate(retry_after=answer.retry_after, uncount=answer.rate_limited, error=answer.error)
    return Fate(dead=True, error=answer.error)


def audit_row(
    connector_id: str,
    kind: str,
    item: Claimed | None,
    remote_id: str | None,
    outcome: str,
    at: datetime,
    *,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    direction: str = "push",
    local_id: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """One audit row: a field written (``field``, old and new value) or a record's summary (lag)."""
    lag = None if item is None else max(0, round((at - item.enqueued_at).total_seconds() * 1000))
    return {
        "connector_id": connector_id,
        "kind": kind,
        "local_id": local_id or (item.local_id if item else ""),
        "contact_id": item.contact_id if item else None,
        "remote_id": remote_id,
        "field": field,
        "old_value": None if old is None else jsonutil.dumps(old),
        "new_value": None if new is None else jsonutil.dumps(new),
        "direction": direction,
        "outcome": outcome,
        "detail": detail,
        "lag_ms": lag if field is None else None,
        "at": at,
    }


def link_rows(
    connector: config.Connector, planned: sync.Plan, written: dict[str, list[Written]], now: datetime
) -> list[dict[str, Any]]:
    """The identity links of the records the vendor wrote (with the fields written)."""
    records = {(r.kind, r.local_id): r for kind in planned.writes for r in planned.writes[kind]}
    return [
        {
            "connector_id": connector.id,
            "kind": kind,
            "local_id": answer.local_id,
            "remote_id": answer.remote_id,
            "remote_modified_at": answer.modified_at,
            "synced_at": now,
            "fields": dict(records[(kind, answer.local_id)].properties),
        }
        for kind, answers in written.items()
        for answer in answers
        if answer.outcome == OK and answer.remote_id and (kind, answer.local_id) in records
    ]


def carried_by(
    planned: sync.Plan, tried: Sequence[tuple[str, Sequence[Record]]], items: Sequence[Claimed]
) -> set[int]:
    """The rows of a failed batch that a sent request carried (``tried``: the requests sent, the last
    one the failure's): the row's contact, its company, or one of its deals or activities was in it. A
    row the failure stopped before any of its requests (its contact unchanged, or the kinds after the
    failing one) was never sent: its attempt is not counted."""
    members: dict[str, set[str]] = {}
    for contact_id, view in planned.views.items():
        if view.get("company_id"):
            members.setdefault(str(view["company_id"]), set()).add(contact_id)
    contacts: set[str] = set()
    for kind, records in tried:
        for record in records:
            if kind == CONTACT:
                contacts.add(record.local_id)
            elif kind == COMPANY:
                contacts |= members.get(record.local_id, set())
            elif owner := (planned.rows.get(f"{kind}:{record.local_id}") or {}).get("contact_id"):
                contacts.add(str(owner))
    return {item.id for item in items if item.local_id in contacts}


def follow_failures(
    planned: sync.Plan,
    written: dict[str, list[Written]],
    by_local: dict[str, Claimed],
    fates: dict[int, Fate],
) -> None:
    """A deal or activity has no outbox row of its own: it rides on its contact's. One that failed
    keeps that row queued (retry) or dead-letters it with the reason, as a contact's own failure
    would; the next attempt finds the contact unchanged and writes only what is missing."""
    for kind in (DEAL, ACTIVITY):
        for answer in written.get(kind) or []:
            if answer.outcome not in (RETRY, FAILED):
                continue
            row = planned.rows.get(f"{kind}:{answer.local_id}") or {}
            owner = by_local.get(str(row.get("contact_id")))
            if owner is None or not fates.get(owner.id, Fate(done=True)).done:
                continue
            error = f"{kind} {answer.local_id}: {answer.error}"
            if answer.outcome == RETRY:
                fates[owner.id] = Fate(
                    error=error, retry_after=answer.retry_after, uncount=answer.rate_limited
                )
            else:
                fates[owner.id] = Fate(dead=True, error=error)


def _contact_outcomes(
    connector: config.Connector,
    kind: str,
    answers: list[Written],
    planned: sync.Plan,
    by_local: dict[str, Claimed],
    now: datetime,
    out: tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, Fate]],
) -> None:
    audit, conflicts, fates = out
    records = {(r.kind, r.local_id): r for r in planned.writes.get(kind) or []}
    for answer in answers:
        record = records.get((kind, answer.local_id))
        owner = by_local.get(answer.local_id) if kind == CONTACT else None
        old = (planned.link(kind, answer.local_id) or {}).get("fields") or {}
        if answer.outcome == OK and record is not None and kind == CONTACT:
            audit.extend(
                audit_row(
                    connector.id,
                    kind,
                    owner,
                    answer.remote_id,
                    "written",
                    now,
                    field=name,
                    old=old.get(name),
                    new=value,
                )
                for name, value in record.properties.items()
                if old.get(name) != value
            )
        if owner is None:
            continue
        if answer.outcome == OK:
            fates[owner.id] = Fate(done=True)
            audit.append(audit_row(connector.id, kind, owner, answer.remote_id, "written", now))
        elif answer.outcome == CONFLICT:
            fates[owner.id] = Fate(done=True)
            conflicts.append(
                {
                    "connector_id": connector.id,
                    "kind": kind,
                    "local_id": answer.local_id,
                    "contact_id": owner.contact_id,
                    "candidates": list(answer.candidates),
                    "reason": answer.error or "several remote records match",
                    "created_at": now,
                    "resolved_at": None,
                }
            )
            audit.append(audit_row(connector.id, kind, owner, None, "conflict", now, detail=answer.error))
        elif answer.outcome == RETRY:
            fates[owner.id] = Fate(
                error=answer.error, retry_after=answer.retry_after, uncount=answer.rate_limited
            )
        else:
            fates[owner.id] = Fate(dead=True, error=answer.error)


class Recorder:
    """The recording half of :class:`~leadflow.connectors.worker.ConnectorWorker`."""

    ctx: AppContext

    def _due(self, now: datetime, attempts: int, fate: Fate) -> datetime | None:
        """When a failed row is due again after ``attempts`` counted ones (None: dead)."""
        raise NotImplementedError  # the worker's: its SCHEDULE, which tests may replace

    @contextmanager
    def _single(self, *, write: bool) -> Iterator[Connection]:
        """A connection for one statement: on PostgreSQL in autocommit (no ``BEGIN``/``COMMIT`` round
        trips; one statement is atomic on its own, and a read sees what was committed when it started, as
        under the default READ COMMITTED), on SQLite the usual transaction (its single writer's lock)."""
        db = self.ctx.db
        if db.is_sqlite:
            with db.write() if write else db.read() as conn:
                yield conn
            return
        with db.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def _record(
        self,
        connector: config.Connector,
        items: list[Claimed],
        planned: sync.Plan,
        written: dict[str, list[Written]],
    ) -> None:
        now = self.ctx.clock.now()
        by_local = {item.local_id: item for item in items}
        links = link_rows(connector, planned, written, now)
        audit: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        fates: dict[int, Fate] = {}
        for kind, answers in written.items():
            _contact_outcomes(connector, kind, answers, planned, by_local, now, (audit, conflicts, fates))
        follow_failures(planned, written, by_local, fates)
        for item in items:
            if item.id in fates:
                continue
            fates[item.id] = Fate(done=True)  # unchanged, or gone
            outcome = (
                "gone"
                if item.local_id in planned.missing
                else "skipped"
                if item.local_id in planned.skipped
                else "unchanged"
            )
            audit.append(
                audit_row(connector.id, CONTACT, item, planned.remote(CONTACT, item.local_id), outcome, now)
            )
        self._settle(connector, items, fates, audit, links=links, conflicts=conflicts)

    def _settle(
        self,
        connector: config.Connector | None,
        items: Sequence[Claimed],
        fates: dict[int, Fate],
        audit: list[dict[str, Any]],
        *,
        links: list[dict[str, Any]] | None = None,
        conflicts: list[dict[str, Any]] | None = None,
        error: str | None = None,
        quiet: bool = False,
    ) -> None:
        now = self.ctx.clock.now()
        done: list[tuple[int, int, datetime]] = []
        retry: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for item in items:
            fate = fates[item.id]
            if fate.done:
                done.append((item.id, item.version, item.leased_until))
                continue
            tried = item.attempts if fate.uncount else item.attempts + 1
            due = None if fate.dead else self._due(now, tried, fate)
            row = {"b_id": item.id, "b_leased": item.leased_until, "v_attempts": tried, "v_error": fate.error}
            if due is None:
                dead.append({**row, "v_dead_at": now})
                if connector is not None:
                    audit.append(
                        audit_row(connector.id, item.kind, item, None, "dead", now, detail=fate.error)
                    )
                continue
            retry.append({**row, "v_next_at": due})
            if connector is not None and not quiet:
                audit.append(audit_row(connector.id, item.kind, item, None, "failed", now, detail=fate.error))
        self._save(connector, done, retry, dead, audit, links or [], conflicts or [], error, now)
        if dead:
            log.warning(
                "connector %s: %d record(s) dead: %s",
                connector.id if connector else "?",
                len(dead),
                dead[0]["v_error"],
            )

    def _save(
        self,
        connector: config.Connector | None,
        done: list[tuple[int, int, datetime]],
        retry: list[dict[str, Any]],
        dead: list[dict[str, Any]],
        audit: list[dict[str, Any]],
        links: list[dict[str, Any]],
        conflicts: list[dict[str, Any]],
        error: str | None,
        now: datetime,
    ) -> None:
        rest = bool(retry or dead or conflicts or (connector is not None and error is not None))
        if not self.ctx.db.is_sqlite and not rest:
            with self._single(write=True) as conn:
                store.record_json(conn, done, links, audit, now)
            return
        with self.ctx.db.write() as conn:
            if not self.ctx.db.is_sqlite:
                store.record_json(conn, done, links, audit, now)
            else:
                if links:
                    queries.upsert_links_many(conn, links)
                versions: dict[tuple[int, datetime], list[int]] = defaultdict(list)
                for row_id, version, leased in done:
                    versions[(version, leased)].append(row_id)
                for (version, leased), ids in versions.items():  # set-based: one DELETE per version claimed
                    conn.execute(queries.done_in(ids, version, leased))
                for (_, leased), ids in versions.items():
                    conn.execute(queries.release_in(ids, now, leased))
                if audit:
                    queries.insert_audit(conn, audit)
            if retry:
                conn.execute(queries.RETRY, retry)
            if dead:
                conn.execute(queries.KILL, dead)
            if conflicts:
                conn.execute(queries.INSERT_CONFLICT, conflicts)
            if connector is not None and error is not None:
                conn.execute(queries.update_connector(connector.id, {"last_error": error[:1000]}))
