"""CSV import: upsert contacts by email, in chunks, with a report of every rejected row."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from leadflow.audit import service as audit
from leadflow.contacts import lifecycle, normalize
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.changes import ProfileChanges
from leadflow.contacts.service import profile_lock, publish_changes
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

CHUNK = 500
COLUMNS = {
    "email": "email",
    "e_mail": "email",
    "email_address": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "user_id": "user_id",
    "userid": "user_id",
    "lifecycle_stage": "lifecycle_stage",
    "stage": "lifecycle_stage",
    "timezone": "timezone",
    "time_zone": "timezone",
    "owner_id": "owner_id",
}


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    contact_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ParsedRow:
    line: int
    email: str
    user_id: str | None
    changes: ProfileChanges


def column_key(header: str) -> str:
    """``"First Name"`` → ``first_name``; unknown columns keep their cleaned name and become traits."""
    cleaned = "_".join(header.strip().lower().replace("-", " ").split())
    return COLUMNS.get(cleaned, cleaned)


def parse_row(line: int, record: dict[str, str], phone_region: str | None) -> ParsedRow:
    """Validate one CSV record; raises :class:`Invalid` with the reason."""
    values: dict[str, str] = {}
    for header, cell in record.items():
        if header is None:
            continue
        key, text = column_key(header), (cell or "").strip()
        if text or key not in values:  # a blank alias column never erases a filled one
            values[key] = text
    if not values.get("email"):
        raise Invalid("email is required", code="missing_email")
    changes = ProfileChanges(email=normalize.email(values.pop("email")))
    if values.get("phone"):
        changes.phone = normalize.phone(values["phone"], phone_region)
    if values.get("timezone"):
        changes.timezone = normalize.timezone(values["timezone"])
    if values.get("lifecycle_stage"):
        changes.lifecycle_stage = lifecycle.validate(values["lifecycle_stage"].lower())
    for name in ("first_name", "last_name", "owner_id"):
        if values.get(name):
            setattr(changes, name, values[name])
    reserved = {"phone", "timezone", "lifecycle_stage", "first_name", "last_name", "owner_id", "user_id"}
    changes.traits = {k: v for k, v in values.items() if k not in reserved and k and v}
    return ParsedRow(line=line, email=changes.email, user_id=values.get("user_id") or None, changes=changes)


def read_csv(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        for record in reader:
            yield reader.line_num, record


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


def _import_chunk(ctx: AppContext, rows: list[ParsedRow], report: ImportReport, actor: str) -> None:
    with ctx.db.write() as conn:
        profile_lock(conn)
        batch = ProfileBatch(conn, ctx.clock, ctx.bus)
        batch.preload(emails=[r.email for r in rows], user_ids=[r.user_id for r in rows if r.user_id])
        touched: list[tuple[str, dict[str, Any]]] = []
        for row in rows:
            try:
                outcome = _upsert(batch, row)
            except Invalid as exc:
                report.rejected.append(Rejected(row.line, exc.message))
                continue
            setattr(report, outcome, getattr(report, outcome) + 1)
            contact = batch.find_email(row.email)
            assert contact is not None
            report.contact_ids.append(contact.id)
            if outcome != "unchanged":
                touched.append(
                    (contact.id, {"line": row.line, **row.changes.set_fields(), "traits": row.changes.traits})
                )
        publish_changes(conn, ctx, batch.flush())
        audit.record_many(
            conn, ctx.clock, actor=actor, action="contact.imported", entity_type="contact", items=touched
        )


def import_contacts(
    ctx: AppContext,
    records: Iterable[tuple[int, dict[str, str]]],
    *,
    actor: str,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Upsert every valid record by email; invalid ones are reported, never half-applied."""
    report = ImportReport()
    pending: list[ParsedRow] = []
    region = ctx.settings.default_phone_region
    for line, record in records:
        report.rows += 1
        try:
            pending.append(parse_row(line, record, region))
        except Invalid as exc:
            report.rejected.append(Rejected(line, exc.message))
        if len(pending) >= CHUNK:
            _import_chunk(ctx, pending, report, actor)
            if progress:
                progress(len(pending))
            pending = []
    if pending:
        _import_chunk(ctx, pending, report, actor)
        if progress:
            progress(len(pending))
    report.rejected.sort(key=lambda r: r.line)
    return report
