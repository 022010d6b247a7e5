"""CSV imports through the API: a job per upload, worked through by the worker in chunks.

Rules:

* ``POST /imports`` checks the file's columns, the mapping and the list at once (a ``422`` changes
  nothing) and answers a ``queued`` job; the worker's import thread (:func:`run`), woken on the
  ``imports`` channel, runs queued jobs one at a time.
* Each chunk commits its contacts together with the job's progress and the chunk's rejected rows, so
  the counts are always true and a job interrupted by a crash is taken over after its lease expires
  (:data:`LEASE`), from the first row not yet committed.
* What is kept: the CSV text only until the job ends (then cleared); rejected rows as sent, with the
  line and reason, and warnings (duplicate emails merged) until the job is deleted. A GDPR erasure
  deletes the person's rejected rows and warnings (by email or user id) and blanks their rows in the
  CSV of a job still waiting or running (see :mod:`leadflow.privacy`).
"""

from __future__ import annotations

import csv
import io
import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import import_run
from leadflow.contacts.import_run import ImportReport, Rejected, RowFilter, Warning
from leadflow.contacts.importer import Column, ParsedRow, email_of, forget, read_text, resolve_columns
from leadflow.contacts.lists import static_list
from leadflow.contacts.queries import imports as queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, LeadflowError, NotFound
from leadflow.kernel.ids import new_id
from leadflow.kernel.worker_loop import WorkerLoop

log = logging.getLogger(__name__)
CHANNEL = "imports"
LEASE = timedelta(minutes=5)
MAX_PAUSE = 60.0  # seconds: the longest pause after failures in a row
SHOWN = 100  # rejected rows and warnings a job's answer carries; the rest through /issues


class ImportIssue(BaseModel):
    line: int
    lines: list[int] | None = Field(description="every line a warning is about")
    code: str
    message: str
    values: dict[str, str] | None = Field(description="a rejected row's non-empty cells, by header")


class ImportJob(BaseModel):
    id: str
    status: str = Field(description="queued, running, done or failed")
    filename: str | None
    list_id: str | None
    mapping: dict[str, str]
    total: int
    processed: int
    created: int
    updated: int
    unchanged: int
    merged: int
    rejected: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rejected_rows: list[ImportIssue] = Field(description=f"the first {SHOWN}, by line")
    warnings: list[ImportIssue] = Field(description=f"the first {SHOWN}, by line")


def create(
    ctx: AppContext,
    text: str,
    *,
    filename: str | None,
    mapping: dict[str, str],
    list_id: str | None,
    actor: str,
) -> ImportJob:
    """Check the file's header, the mapping and the list, then queue the job."""
    header = next(read_text(text)(), None)
    if header is None:
        raise Invalid("the file is empty", code="empty_file")
    resolve_columns(header[1], mapping)
    if list_id is not None:
        list_id = static_list(ctx, list_id)
    job_id = new_id()
    with ctx.db.write() as conn:
        conn.execute(
            queries.INSERT_JOB,
            {
                "id": job_id,
                "status": "queued",
                "filename": (filename or "")[:255] or None,
                "mapping": mapping,
                "list_id": list_id,
                "source": text,
                "actor": actor,
                "created_at": ctx.clock.now(),
            },
        )
        audit.record(
            conn, ctx.clock, actor=actor, action="import.created", entity_type="import", entity_id=job_id,
            data={"filename": filename, "mapping": mapping, "list_id": list_id},
        )  # fmt: skip
        job = _view(conn, job_id)
    ctx.signals.announce(CHANNEL)
    return job


def _issues(conn: Connection, job_id: str, kind: str, *, after: int, limit: int) -> list[ImportIssue]:
    query = queries.job_issues(job_id, kind, after=after, limit=limit)
    return [
        ImportIssue(line=r.line, lines=r.lines, code=r.code, message=r.message, values=r.row_values)
        for r in conn.execute(query)
    ]


def _view(conn: Connection, job_id: str) -> ImportJob:
    row = conn.execute(queries.JOB, {"job_id": job_id}).first()
    if row is None:
        raise NotFound(f"no import {job_id}", code="import_not_found")
    fields = {name: row._mapping[name] for name in ImportJob.model_fields if name in row._mapping}
    return ImportJob(
        **fields,
        rejected_rows=_issues(conn, job_id, "rejected", after=0, limit=SHOWN),
        warnings=_issues(conn, job_id, "warning", after=0, limit=SHOWN),
    )


def get(ctx: AppContext, job_id: str) -> ImportJob:
    with ctx.db.read() as conn:
        return _view(conn, job_id)


def issues(ctx: AppContext, job_id: str, kind: str, *, after: int, limit: int) -> list[ImportIssue]:
    """A job's rejected rows or warnings by line, ``limit`` of them after line ``after``."""
    with ctx.db.read() as conn:
        _view(conn, job_id)
        return _issues(conn, job_id, kind, after=after, limit=limit)


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[ImportJob]:
    """Jobs newest first (without their issues: ask for one job to see them)."""
    with ctx.db.read() as conn:
        rows = list(conn.execute(queries.jobs_page(after=after, limit=limit)))
    return [
        ImportJob(
            **{n: r._mapping[n] for n in ImportJob.model_fields if n in r._mapping},
            rejected_rows=[],
            warnings=[],
        )
        for r in rows
    ]


def delete(ctx: AppContext, job_id: str, *, actor: str) -> None:
    """Delete a finished job with its rejected rows and warnings."""
    with ctx.db.write() as conn:
        job = _view(conn, job_id)
        if job.status in ("queued", "running"):
            raise Invalid("a job is deleted once it has finished", code="import_running")
        conn.execute(queries.DELETE_JOB_ISSUES, {"job_id": job_id})
        conn.execute(queries.DELETE_JOB, {"job_id": job_id})
        audit.record(
            conn, ctx.clock, actor=actor, action="import.deleted", entity_type="import", entity_id=job_id
        )


# --- the worker side ---------------------------------------------------------------------------


def _claim(ctx: AppContext) -> Any:
    """The oldest queued job, or a running one whose worker stopped renewing its lease; taken with a
    conditional update, so two workers never run the same job. Idle, it only reads."""
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        candidates = list(conn.execute(queries.due_jobs(now, 5)).scalars())
    for candidate in candidates:
        with ctx.db.write() as conn:
            taken = conn.execute(queries.take_job(candidate, now, now + LEASE))
            if taken.rowcount:
                return conn.execute(queries.JOB, {"job_id": candidate}).one()
    return None


def _issue_rows(job_id: str, rejected: list[Rejected], warnings: list[Warning]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "job_id": job_id, "kind": "rejected", "line": r.line, "lines": None, "code": r.code,
            "message": r.reason, "email": (r.email or "")[:320] or None,
            "user_id": (r.user_id or "")[:255] or None, "row_values": r.values,
        }
        for r in rejected
    ]  # fmt: skip
    rows += [
        {
            "job_id": job_id, "kind": "warning", "line": w.line, "lines": w.lines, "code": w.code,
            "message": w.message, "email": w.email, "user_id": None, "row_values": None,
        }
        for w in warnings
    ]  # fmt: skip
    return rows


def _unerased(job: Any, columns: list[Column]) -> RowFilter:
    """A run works from the file as it read it; a person erased meanwhile has had their rows emptied
    in the stored copy (:func:`on_contacts_erased`). Under the profile lock, before each chunk: once an
    erasure has happened since the job started, rows whose address the stored copy no longer holds are
    dropped, so the import never brings an erased person back."""
    known: dict[str, Any] = {"erasures": 0, "present": None}

    def keep(conn: Connection, rows: list[ParsedRow]) -> list[ParsedRow]:
        count = conn.execute(queries.ERASURES_SINCE, {"since": job.started_at}).scalar_one()
        if not count:
            return rows
        if count != known["erasures"]:
            source = conn.execute(queries.JOB_SOURCE, {"job_id": job.id}).scalar()
            records = read_text(source or "")()
            next(records, None)
            known["erasures"], known["present"] = count, {email_of(r, columns) for _, r in records}
        return [row for row in rows if row.email in known["present"]]

    return keep


def _run(ctx: AppContext, job: Any) -> None:
    source = read_text(job.source)
    found = import_run.scan(source, job.mapping)
    with ctx.db.write() as conn:  # warnings and the total, once per run (a resumed run rewrites them)
        conn.execute(queries.DELETE_WARNINGS, {"job_id": job.id})
        if found.warnings:
            conn.execute(queries.INSERT_ISSUES, _issue_rows(job.id, [], found.warnings))
        conn.execute(queries.SET_TOTAL, {"job_id": job.id, "total": found.total})
    report = ImportReport(
        rows=job.processed,
        created=job.created,
        updated=job.updated,
        unchanged=job.unchanged,
        merged=job.merged,
    )
    saved = len(report.rejected)

    def progress(conn: Connection, report: ImportReport) -> None:
        nonlocal saved
        fresh = report.rejected[saved:]
        if fresh:
            conn.execute(queries.INSERT_ISSUES, _issue_rows(job.id, fresh, []))
        saved = len(report.rejected)
        counts = {name: getattr(report, name) for name in ("created", "updated", "unchanged", "merged")}
        counts["processed"] = report.rows
        conn.execute(queries.job_progress(job.id, counts, len(fresh), ctx.clock.now() + LEASE))

    import_run.import_contacts(
        ctx, source, actor=f"{job.actor}:import", list_id=job.list_id, start=job.processed, report=report,
        scanned=found, on_chunk=progress, keep=_unerased(job, found.columns),
    )  # fmt: skip


def _finish(ctx: AppContext, job_id: str, error: str | None) -> None:
    with ctx.db.write() as conn:
        conn.execute(queries.finish_job(job_id, error, ctx.clock.now()))


def run_due(ctx: AppContext) -> int:
    """Run every waiting job to its end, one after another; returns how many ran. A job whose file or
    list turned out wrong (a list deleted meanwhile, say) fails with the reason; the rows it had
    committed stay imported."""
    ran = 0
    while (job := _claim(ctx)) is not None:
        try:
            _run(ctx, job)
        except LeadflowError as exc:
            _finish(ctx, job.id, exc.message)
        except Exception as exc:
            log.exception("import %s failed", job.id)
            _finish(ctx, job.id, f"internal error: {type(exc).__name__}")
        else:
            _finish(ctx, job.id, None)
        finally:
            forget()
        ran += 1
    return ran


def run(ctx: AppContext, stop: threading.Event) -> None:
    """The worker's import thread: run waiting jobs, then sleep until an upload wakes it or the poll
    interval passes (a job left by a dead worker is found then). Database errors pause and retry."""
    idle = ctx.settings.scheduler_interval
    WorkerLoop(
        "imports",
        lambda: _run_all(ctx),
        CHANNEL,
        poll=idle,
        backoff=idle,
        max_backoff=max(MAX_PAUSE, idle),
        pause=idle,
        logger=log,
    ).run(ctx.signals, stop)


def _run_all(ctx: AppContext) -> int:
    run_due(ctx)
    return 0  # run_due ran jobs until none was waiting: sleep until woken


# --- GDPR ------------------------------------------------------------------------------------------


def _blank_rows(text: str, mapping: dict[str, str], emails: set[str]) -> str | None:
    """The CSV with the rows of these addresses emptied (same number of records), or None if none."""
    records = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    if not records:
        return None
    columns = resolve_columns(records[0], mapping)
    emails_at = [i for i, c in enumerate(columns) if c.field == "email"]
    changed = False
    for index, record in enumerate(records[1:], start=1):
        raw = {record[i].strip().lower() for i in emails_at if i < len(record)}
        if email_of(record, columns) in emails or raw & emails:
            records[index] = [""] * len(record)
            changed = True
    if not changed:
        return None
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(records)
    return out.getvalue()


def export(conn: Connection, emails: list[str], user_ids: list[str]) -> list[dict[str, Any]]:
    """The rejected rows and warnings of imports that name the person (GDPR access)."""
    query = queries.issues_naming(sorted({e.strip().lower() for e in emails}), user_ids)
    return [] if query is None else [dict(row._mapping) for row in conn.execute(query)]


def on_contacts_erased(conn: Connection, message: Any) -> None:
    """Delete the person's rejected rows and warnings; blank their rows in the CSV of waiting jobs."""
    emails = {e.strip().lower() for e in getattr(message, "emails", ()) if e}
    user_ids = [u for u in message.user_ids if u]
    for statement in queries.delete_issues_naming(sorted(emails), user_ids):
        conn.execute(statement)
    if not emails:
        return
    for row in conn.execute(queries.STORED_FILES).all():
        try:
            blanked = _blank_rows(row.source, row.mapping, emails)
        except Invalid:
            continue  # a file whose columns no longer resolve fails when it runs; nothing of it is imported
        if blanked is not None:
            conn.execute(queries.SET_SOURCE, {"job_id": row.id, "new_source": blanked})
