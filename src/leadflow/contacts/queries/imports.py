"""The CSV import jobs' bookkeeping (:mod:`leadflow.contacts.import_jobs`): jobs, their issues, their
lease. :data:`SAMPLES` builds each statement-building function's statement for the compile test."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.contacts.models import erasures, import_issues, import_jobs
from leadflow.kernel.db import Sample

INSERT_JOB = import_jobs.insert()
INSERT_ISSUES = import_issues.insert()
JOB = sa.select(import_jobs).where(import_jobs.c.id == sa.bindparam("job_id"))
JOB_SOURCE = sa.select(import_jobs.c.source).where(import_jobs.c.id == sa.bindparam("job_id"))
#: Jobs whose stored file may hold an erased person's rows.
STORED_FILES = sa.select(import_jobs.c.id, import_jobs.c.source, import_jobs.c.mapping).where(
    import_jobs.c.source.is_not(None)
)
SET_SOURCE = (
    import_jobs.update()
    .where(import_jobs.c.id == sa.bindparam("job_id"))
    .values(source=sa.bindparam("new_source"))
)
SET_TOTAL = (
    import_jobs.update().where(import_jobs.c.id == sa.bindparam("job_id")).values(total=sa.bindparam("total"))
)
DELETE_WARNINGS = import_issues.delete().where(
    import_issues.c.job_id == sa.bindparam("job_id"), import_issues.c.kind == "warning"
)
DELETE_JOB_ISSUES = import_issues.delete().where(import_issues.c.job_id == sa.bindparam("job_id"))
DELETE_JOB = import_jobs.delete().where(import_jobs.c.id == sa.bindparam("job_id"))
#: How many erasures happened at or after ``since``.
ERASURES_SINCE = (
    sa.select(sa.func.count()).select_from(erasures).where(erasures.c.erased_at >= sa.bindparam("since"))
)


def job_issues(job_id: str, kind: str, *, after: int, limit: int) -> sa.Select[Any]:
    """A job's rejected rows or warnings by line, ``limit`` of them after line ``after``."""
    i = import_issues.c
    return (
        sa.select(i.id, i.line, i.lines, i.code, i.message, i.row_values)
        .where(i.job_id == job_id, i.kind == kind, i.line > after)
        .order_by(i.line, i.id)
        .limit(limit)
    )


def jobs_page(*, after: str | None, limit: int) -> sa.Select[Any]:
    """Jobs newest first, ``limit`` of them before the id ``after``."""
    query = sa.select(import_jobs).order_by(import_jobs.c.id.desc()).limit(limit)
    return query.where(import_jobs.c.id < after) if after else query


def _due(now: datetime) -> sa.ColumnElement[bool]:
    j = import_jobs.c
    return sa.or_(j.status == "queued", sa.and_(j.status == "running", j.lease_until < now))


def due_jobs(now: datetime, limit: int) -> sa.Select[Any]:
    """Queued jobs, and running ones whose worker stopped renewing its lease, oldest first."""
    return sa.select(import_jobs.c.id).where(_due(now)).order_by(import_jobs.c.id).limit(limit)


def take_job(job_id: str, now: datetime, lease_until: datetime) -> sa.Update:
    """Take a job if it is still due (a conditional update: two workers never run the same job)."""
    j = import_jobs.c
    return (
        import_jobs.update()
        .where(j.id == job_id, _due(now))
        .values(status="running", lease_until=lease_until, started_at=sa.func.coalesce(j.started_at, now))
    )


def job_progress(job_id: str, counts: dict[str, int], rejected: int, lease_until: datetime) -> sa.Update:
    """A chunk's counts; ``rejected`` more rejected rows; the lease renewed."""
    return (
        import_jobs.update()
        .where(import_jobs.c.id == job_id)
        .values(
            **counts,
            rejected=import_jobs.c.rejected + rejected,
            lease_until=lease_until,
        )
    )


def finish_job(job_id: str, error: str | None, at: datetime) -> sa.Update:
    """``done`` (or ``failed`` with its error); the stored file goes."""
    return (
        import_jobs.update()
        .where(import_jobs.c.id == job_id)
        .values(
            status="failed" if error else "done", error=error, source=None, finished_at=at, lease_until=None
        )
    )


def issues_naming(emails: Sequence[str], user_ids: Sequence[str]) -> sa.Select[Any] | None:
    """The import issues (rejected rows, warnings) that name one of these addresses or user ids."""
    i = import_issues.c
    wanted = [i.email.in_(list(emails))] if emails else []
    wanted += [i.user_id.in_(list(user_ids))] if user_ids else []
    if not wanted:
        return None
    return (
        sa.select(i.job_id, i.kind, i.line, i.lines, i.code, i.message, i.row_values)
        .where(sa.or_(*wanted))
        .order_by(i.job_id, i.line)
    )


def delete_issues_naming(emails: Sequence[str], user_ids: Sequence[str]) -> list[sa.Delete]:
    """Delete the import issues that name one of these addresses or user ids."""
    i = import_issues.c
    found = [import_issues.delete().where(i.email.in_(list(emails)))] if emails else []
    return found + ([import_issues.delete().where(i.user_id.in_(list(user_ids)))] if user_ids else [])


_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: job_issues("j1", "rejected", after=0, limit=100),
    lambda: jobs_page(after="j1", limit=50),
    lambda: due_jobs(_AT, 5),
    lambda: take_job("j1", _AT, _AT),
    lambda: job_progress("j1", {"created": 1, "processed": 2}, 3, _AT),
    lambda: finish_job("j1", None, _AT),
    lambda: [q for q in [issues_naming(["a@example.com"], ["u1"])] if q is not None],
    lambda: delete_issues_naming(["a@example.com"], ["u1"]),
]
