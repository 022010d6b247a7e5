"""CSV import, the database side: upsert by email in chunks of :data:`CHUNK` rows, one transaction each.

Rules:

* **Upsert by email.** A row with a ``user_id`` that belongs to another contact, or an email whose
  contact has another user id, is rejected; a rejected row changes nothing.
* **Duplicate emails in one file are merged** into one contact: the rows apply in file order, so later
  non-empty values win (blank cells change nothing), and a warning names every line of that address.
  The first row counts as created or updated, each later one as ``merged``.
* Companies (:mod:`.import_companies`), tags and the list the contacts go to are written in the
  chunk's transaction, with the chunk's progress (``on_chunk``), so an interrupted import resumes after
  its last committed chunk (``start``) without applying a row twice or losing one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import import_companies, tags
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.importer import (
    Column,
    Opener,
    ParsedRow,
    cells,
    email_of,
    forget,
    parse_row,
    resolve_columns,
)
from leadflow.contacts.lists import add_to_list
from leadflow.contacts.writes import profile_lock, publish_changes
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

CHUNK = 500


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    code: str = "invalid"
    values: dict[str, str] = field(default_factory=dict)
    email: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class Warning:
    line: int
    lines: list[int]
    code: str
    message: str
    email: str | None = None


@dataclass
class ImportReport:
    total: int = 0
    rows: int = 0  # records processed so far (blank ones included, so a resumed job skips exactly these)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[Warning] = field(default_factory=list)
    listed: int = 0  # contacts newly added to the list


ChunkHook = Callable[[Connection, ImportReport], None]
RowFilter = Callable[[Connection, list[ParsedRow]], list[ParsedRow]]


@dataclass(frozen=True)
class Scan:
    columns: list[Column]
    total: int
    first_line: dict[str, int]
    warnings: list[Warning]


def _blank(record: list[str]) -> bool:
    """A blank line, or a row whose cells are all empty (an erased person's row in a waiting job):
    counted, never imported nor rejected."""
    return not any(cell.strip() for cell in record)


def scan(open_rows: Opener, mapping: dict[str, str] | None) -> Scan:
    """Read the file once for its columns, its row count and the emails it repeats."""
    rows = open_rows()
    header = next(rows, None)
    if header is None:
        raise Invalid("the file is empty", code="empty_file")
    columns = resolve_columns(header[1], mapping)
    total = 0
    lines: dict[str, list[int]] = {}
    for line, record in rows:
        total += 1
        if _blank(record):
            continue
        email = email_of(record, columns)
        if email is not None:
            lines.setdefault(email, []).append(line)
    warnings = [
        Warning(
            line=found[0],
            lines=found,
            code="duplicate_email",
            message=f"{email} is on lines {', '.join(map(str, found))}: merged into one contact "
            "(later non-empty values win)",
            email=email,
        )
        for email, found in lines.items()
        if len(found) > 1
    ]
    warnings.sort(key=lambda w: w.line)
    return Scan(columns, total, {email: found[0] for email, found in lines.items()}, warnings)


def _upsert(batch: ProfileBatch, row: ParsedRow) -> str:
    contact = batch.find_email(row.email)
    by_user = batch.find("user", row.user_id)
    if row.user_id and by_user is not None and (contact is None or by_user.id != contact.id):
        raise Invalid(f"user id {row.user_id} belongs to another contact", code="user_id_taken")
    if row.user_id and contact is not None and contact.user_id not in (None, row.user_id):
        raise Invalid(f"{row.email} already has user id {contact.user_id}", code="user_id_conflict")
    created = contact is None
    contact = contact or batch.create()
    before = contact.row()
    if row.user_id:
        batch.link(contact, "user", row.user_id)
    batch.apply_changes(contact, row.changes, manual=True, strict=True)
    if created:
        return "created"
    return "updated" if contact.row() != before else "unchanged"


@dataclass
class _Chunk:
    ctx: AppContext
    report: ImportReport
    actor: str
    first_line: dict[str, int]
    list_id: str | None
    on_chunk: ChunkHook | None
    keep: RowFilter | None

    def write(self, rows: list[ParsedRow], consumed: int) -> None:
        report = self.report
        with self.ctx.db.write() as conn:
            profile_lock(conn)
            if self.keep is not None:
                rows = self.keep(conn, rows)
            batch = ProfileBatch(conn, self.ctx.clock, self.ctx.bus)
            batch.preload(emails=[r.email for r in rows], user_ids=[r.user_id for r in rows if r.user_id])
            import_companies.link(conn, batch, rows)
            touched: list[tuple[str, dict[str, Any]]] = []
            tagged: list[tuple[str, str]] = []
            ids: list[str] = []
            for row in rows:
                try:
                    outcome = _upsert(batch, row)
                except Invalid as exc:
                    report.rejected.append(_rejected(row.line, exc, row.values, row.email, row.user_id))
                    continue
                if outcome != "created" and self.first_line.get(row.email, row.line) < row.line:
                    outcome = "merged"
                setattr(report, outcome, getattr(report, outcome) + 1)
                contact = batch.find_email(row.email)
                assert contact is not None
                ids.append(contact.id)
                tagged += [(contact.id, tag) for tag in row.tags]
                if outcome != "unchanged" or row.tags:
                    data = {"line": row.line, **row.changes.set_fields(), "traits": row.changes.traits}
                    touched.append((contact.id, {**data, "tags": row.tags} if row.tags else data))
            publish_changes(conn, self.ctx, batch.flush())
            tags.add_pairs(conn, self.ctx, tagged)
            audit.record_many(
                conn, self.ctx.clock, actor=self.actor, action="contact.imported", entity_type="contact",
                items=touched,
            )  # fmt: skip
            if self.list_id and ids:
                report.listed += add_to_list(conn, self.ctx, self.list_id, ids, self.actor)
            report.rows += consumed
            if self.on_chunk is not None:
                self.on_chunk(conn, report)
        if self.list_id:
            self.ctx.signals.announce("events")


def _rejected(
    line: int, exc: Invalid, values: dict[str, str], email: str | None, user_id: str | None
) -> Rejected:
    return Rejected(line, exc.message, exc.code, values, email, user_id)


def _raw_email(values: dict[str, str], columns: list[Column]) -> str | None:
    """The email cell as written, lower-cased: what erasure matches a rejected row by."""
    return next(
        (values[c.header].lower() for c in columns if c.field == "email" and c.header in values), None
    )


def import_contacts(
    ctx: AppContext,
    open_rows: Opener,
    *,
    actor: str,
    mapping: dict[str, str] | None = None,
    list_id: str | None = None,
    start: int = 0,
    report: ImportReport | None = None,
    scanned: Scan | None = None,
    on_chunk: ChunkHook | None = None,
    keep: RowFilter | None = None,
) -> ImportReport:
    """Import every row of the file (after the first ``start`` rows, already imported by an earlier
    run that ``report`` holds the counts of); returns the report. See the module's rules. ``keep``
    filters each chunk's rows under the profile lock (a job drops rows of people erased meanwhile)."""
    try:
        found = scanned or scan(open_rows, mapping)
        chunk = _Chunk(ctx, report or ImportReport(), actor, found.first_line, list_id, on_chunk, keep)
        return _import(open_rows, found, start, chunk)
    finally:
        forget()


def _import(open_rows: Opener, found: Scan, start: int, chunk: _Chunk) -> ImportReport:
    report = chunk.report
    report.total, report.warnings = found.total, found.warnings
    region = chunk.ctx.settings.default_phone_region
    rows = open_rows()
    next(rows)
    pending: list[ParsedRow] = []
    consumed = 0
    for index, (line, record) in enumerate(rows):
        if index < start:
            continue
        consumed += 1
        if _blank(record):
            continue
        try:
            pending.append(parse_row(line, record, found.columns, region))
        except Invalid as exc:
            values = cells(record, found.columns)
            report.rejected.append(_rejected(line, exc, values, _raw_email(values, found.columns), None))
        if consumed >= CHUNK:
            chunk.write(pending, consumed)
            pending, consumed = [], 0
    if consumed:
        chunk.write(pending, consumed)
    report.rejected.sort(key=lambda r: r.line)
    return report
