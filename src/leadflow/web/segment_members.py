"""A segment's members: a page of 50 (by contact id, *Next page*) and the whole list as CSV.

The CSV is streamed: it walks the members a thousand at a time through
``leadflow.segments.service.members`` (keyset pagination, one short read transaction per chunk), so
a segment of a million contacts downloads in bounded memory. A cell that a spreadsheet would read as
a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError
from leadflow.segments import service as segments
from leadflow.web.access import Console, PageError, Viewer, console, page
from leadflow.web.render import page as render
from leadflow.web.render import protect
from leadflow.web.segment_pages import AREA, PAGE_SIZE, segment_or_404

router = APIRouter()
CSV_CHUNK = 1000
CSV_COLUMNS = ("contact_id", "email", "first_name", "last_name", "lifecycle_stage", "entered_at")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@router.get("/segments/{segment_id}/members")
def members(
    request: Request,
    segment_id: str,
    cursor: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    segment = segment_or_404(web, segment_id)
    try:
        after = pagination.text_at(cursor, "after")
    except (LeadflowError, AttributeError):
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None
    found = segments.members(web.ctx, segment_id, after=after, limit=PAGE_SIZE + 1)
    items, next_cursor = pagination.paginate(found, PAGE_SIZE, lambda m: {"after": m.contact.id})
    here = f"/app/segments/{segment_id}/members"
    return render(
        request,
        "segments/members.html",
        viewer,
        title=f"Members of {segment.name}",
        segment=segment,
        members=items,
        more=f"{here}?{urlencode({'cursor': next_cursor})}" if next_cursor else None,
        first=here if cursor else None,
    )


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _lines(ctx: AppContext, segment_id: str) -> Iterator[str]:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    after: str | None = None
    while True:
        chunk = segments.members(ctx, segment_id, after=after, limit=CSV_CHUNK)
        for m in chunk:
            c = m.contact
            row = (c.id, c.email, c.first_name, c.last_name, c.lifecycle_stage, m.entered_at.isoformat())
            writer.writerow([_cell(v) for v in row])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if not chunk:
            return
        after = chunk[-1].contact.id


@router.get("/segments/{segment_id}/members.csv")
def members_csv(
    segment_id: str, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """Every member as CSV (contact id, email, names, stage, when they entered), streamed."""
    segment = segment_or_404(web, segment_id)
    name = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in segment.name)[:60] or "segment"
    headers = {"Content-Disposition": f'attachment; filename="{name}-members.csv"'}
    lines = _lines(web.ctx, segment_id)
    return protect(StreamingResponse(lines, media_type="text/csv; charset=utf-8", headers=headers))
