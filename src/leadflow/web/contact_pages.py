"""The contacts pages: the contacts list (search, any segment rule, a segment, a lifecycle stage, the
contacts behind a dashboard KPI; counted, paginated, exported as CSV) and a contact's page (profile,
consent and topic preferences, timeline, score explanation, segments, journeys, messages, deals; edit,
tag, erase, export).

Marketers and admins change; viewers read (no form, a POST refused); sales users get the 403 page.
Every read and change goes through the domains' services, as the API's do; changes are audited as
``user:<email>``. The list and its CSV read the same filter (:class:`Asked`), so the export holds
exactly the contacts the list shows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from sqlalchemy.engine import Connection

from leadflow.analytics import service as analytics
from leadflow.contacts import service as contacts
from leadflow.kernel import inputs, pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError
from leadflow.segments import service as segments
from leadflow.web.access import Console, PageError, Viewer, console, page
from leadflow.web.render import page as render

router = APIRouter()
AREA = "contacts"
PAGE_SIZE = 50
CSV_CHUNK = 1000  # contacts read per query while the CSV streams
MAX_RULE = 8000  # characters of rule JSON (it travels in the URL: the list is a GET form)
CSV_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "user_id",
    "lifecycle_stage",
    "subscription_status",
    "owner_id",
    "company_id",
    "timezone",
    "created_at",
    "updated_at",
    "last_seen_at",
    "traits",
)


class BadFilter(ValueError):
    """A filter the list cannot apply: the page answers 422 with the reason."""


@dataclass(frozen=True)
class Asked:
    """The list's filter as the GET form sends it (every field text; empty is "not filtered")."""

    q: str = ""
    stage: str = ""
    segment: str = ""
    rule: str = ""
    entered: str = ""  # a lifecycle stage: its first entry in [start, end] (a dashboard KPI)
    start: str = ""
    end: str = ""
    source: str = ""  # with ``entered``: the first touch (a row of the dashboard's leads by source)
    medium: str = ""
    campaign: str = ""

    @classmethod
    def of(cls, request: Request) -> Asked:
        got = request.query_params
        names = {"start": "from", "end": "to"}
        return cls(**{f: (got.get(names.get(f, f)) or "").strip() for f in cls.__dataclass_fields__})

    def params(self) -> dict[str, str]:
        """The query string's fields (for links: next page, CSV, the dashboard's)."""
        names = {"start": "from", "end": "to"}
        return {names.get(k, k): v for k, v in asdict(self).items() if v}


def _day(text: str, name: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        raise BadFilter(f"'{name}' must be a date as YYYY-MM-DD (got {text[:20]!r})") from None


def where(conn: Connection, ctx: AppContext, asked: Asked) -> contacts.ContactFilter:
    """The contacts filter of ``asked``: :class:`BadFilter` says what is wrong (a rule that is not
    JSON, fails the rule language's validation or names an unknown segment; an unknown stage; a bad
    period)."""
    if len(asked.q) > 200:
        raise BadFilter("the search is at most 200 characters")
    if asked.stage and asked.stage not in contacts.STAGES:
        raise BadFilter(f"unknown lifecycle stage {asked.stage!r}")
    among: list[Any] = []
    try:
        if asked.rule:
            if len(asked.rule) > MAX_RULE:
                raise BadFilter(f"the rule is at most {MAX_RULE} characters")
            try:
                raw = json.loads(asked.rule)
                inputs.check(raw)  # no NUL, no lone surrogate, numbers in range, not nested too deep
            except (ValueError, RecursionError) as exc:
                raise BadFilter(f"the rule is not JSON: {exc}") from None
            except LeadflowError as exc:
                raise BadFilter(f"the rule: {exc.message}") from None
            among.append(segments.selection(conn, ctx, raw))
        if asked.segment:
            among.append(segments.selection(conn, ctx, {"segment": asked.segment}))
        if asked.entered:
            today = ctx.clock.now().date()
            period, _ = analytics.period(_day(asked.start, "from"), _day(asked.end, "to"), today)
            touch = (asked.source, asked.medium or "(none)", asked.campaign or "(none)")
            among.append(
                analytics.entrants(
                    asked.entered, period.start, period.end, first_touch=touch if asked.source else None
                )
            )
    except LeadflowError as exc:
        raise BadFilter(str(exc)) from None
    return contacts.ContactFilter(q=asked.q or None, lifecycle_stage=asked.stage or None, among=tuple(among))


def contact_path(contact_id: str) -> str:
    return f"/app/contacts/{quote(contact_id, safe='')}"


def _after(cursor: str | None) -> str | None:
    try:
        found = pagination.decode(cursor)
        return None if found is None else str(found["after"])
    except (LeadflowError, KeyError, TypeError, ValueError):
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None


@router.get("/contacts")
def listing(
    request: Request,
    cursor: str | None = None,
    erased: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    asked = Asked.of(request)
    after = _after(cursor)
    values: dict[str, Any] = {"error": None, "total": None, "found": [], "more": None, "first": None}
    status = 200
    try:
        with web.ctx.db.read() as conn:
            chosen = where(conn, web.ctx, asked)
            found = contacts.search(conn, chosen, after=after, limit=PAGE_SIZE + 1)
            values["total"] = contacts.count_matching(conn, chosen)
        items, next_cursor = pagination.paginate(found, PAGE_SIZE, lambda c: {"after": c.id})
        kept = asked.params()
        values["found"] = items
        values["more"] = (
            f"/app/contacts?{urlencode({**kept, 'cursor': next_cursor})}" if next_cursor else None
        )
        values["first"] = f"/app/contacts?{urlencode(kept)}" if cursor else None
        values["csv"] = f"/app/contacts.csv?{urlencode(kept)}"
    except BadFilter as exc:
        values["error"], status = str(exc), 422
    return render(
        request,
        "contacts/list.html",
        viewer,
        status,
        title="Contacts",
        asked=asked,
        stages=contacts.STAGES,
        segment_choices=segments.listing(web.ctx, after=None, limit=500),
        path=contact_path,
        erased=erased,
        **values,
    )


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula starts with a quote."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()


def _stream(ctx: AppContext, asked: Asked) -> Iterator[str]:
    """The CSV, a chunk of contacts per query (keyset by id): memory stays bounded for any list."""
    yield _csv_line(list(CSV_COLUMNS))
    after: str | None = None
    while True:
        with ctx.db.read() as conn:
            chunk = contacts.search(conn, where(conn, ctx, asked), after=after, limit=CSV_CHUNK)
        for contact in chunk:
            yield _csv_line([_cell(getattr(contact, name)) for name in CSV_COLUMNS])
        if len(chunk) < CSV_CHUNK:
            return
        after = chunk[-1].id


@router.get("/contacts.csv")
def export_list(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """The filtered list as CSV, streamed (the filter is checked before the first byte)."""
    asked = Asked.of(request)
    try:
        with web.ctx.db.read() as conn:
            where(conn, web.ctx, asked)
    except BadFilter as exc:
        raise PageError(422, "Bad filter", str(exc)) from None
    headers = {"Content-Disposition": 'attachment; filename="contacts.csv"', "Cache-Control": "no-store"}
    return StreamingResponse(_stream(web.ctx, asked), media_type="text/csv; charset=utf-8", headers=headers)


def back(contact_id: str, done: str) -> Response:
    return RedirectResponse(f"{contact_path(contact_id)}?done={done}", status_code=303)
