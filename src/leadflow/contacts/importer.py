"""CSV import, the file side: the accepted columns, ``--map``, and turning one row into a change set.

Columns (headers are matched case-insensitively; spaces and dashes count as ``_``):

* ``email`` (required; also ``e_mail``, ``email_address``), ``first_name`` (``firstname``),
  ``last_name`` (``lastname``, ``surname``), ``phone`` (``phone_number``, ``mobile``), ``user_id``
  (``userid``), ``lifecycle_stage`` (``stage``), ``timezone`` (``time_zone``), ``owner_id``;
* ``country`` (``country_code``): an ISO 3166 two-letter code; it is the region the row's phone number
  is read in when the number has no ``+`` country code (else ``LEADFLOW_DEFAULT_PHONE_REGION``), and
  it is kept as the trait ``country``;
* ``company_name`` (``company``, ``organization``) and ``company_domain`` (``company_website``): the
  contact's company, found by domain, else by name (any case), else created;
* ``tags`` (``tag``): tags to add, separated by ``,`` ``;`` or ``|``;
* any other column becomes a trait named after its cleaned header (``Plan Type`` → ``plan_type``).

``--map HEADER=FIELD`` (repeatable) reads a column as one of the fields above, ``traits.NAME`` makes it
that trait, and an empty field (``Notes=``) skips it. Blank cells never change anything: importing
a file that lacks a value leaves the stored value alone.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import phonenumbers

from leadflow.contacts import normalize, stages, tags
from leadflow.contacts.changes import ProfileChanges
from leadflow.kernel.errors import Invalid

FIELDS = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "country",
    "timezone",
    "user_id",
    "lifecycle_stage",
    "owner_id",
    "company_name",
    "company_domain",
    "tags",
)
ALIASES = {
    "e_mail": "email",
    "email_address": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "surname": "last_name",
    "phone_number": "phone",
    "mobile": "phone",
    "userid": "user_id",
    "stage": "lifecycle_stage",
    "time_zone": "timezone",
    "country_code": "country",
    "company": "company_name",
    "organization": "company_name",
    "organisation": "company_name",
    "company_website": "company_domain",
    "tag": "tags",
}
_TAG_SEPARATORS = re.compile(r"[,;|]")

# The import validates each email twice (the duplicate scan, then the row) and sees the same few company
# domains again and again: both passes of a file up to this many rows validate each address once.
# :func:`forget` empties them when an import ends, so no address outlives it in memory.
canonical_email = lru_cache(maxsize=65_536)(normalize.email)
company_domain = lru_cache(maxsize=4_096)(normalize.domain)


def forget() -> None:
    canonical_email.cache_clear()
    company_domain.cache_clear()


Rows = Iterator[tuple[int, list[str]]]
Opener = Callable[[], Rows]


def clean(header: str) -> str:
    """``"First Name"`` → ``first_name``."""
    return "_".join(header.strip().lower().replace("-", " ").split())


def field_for(name: str) -> str | None:
    key = clean(name)
    key = ALIASES.get(key, key)
    return key if key in FIELDS else None


@dataclass(frozen=True)
class Column:
    """Where one CSV column goes: a field, a trait, or nowhere (``field`` and ``trait`` both None)."""

    header: str
    field: str | None = None
    trait: str | None = None


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """``["E-mail=email", "Notes="]`` → ``{"E-mail": "email", "Notes": ""}``."""
    found: dict[str, str] = {}
    for item in items:
        header, sep, target = item.partition("=")
        if not sep or not header.strip():
            raise Invalid(f"a mapping is HEADER=FIELD, not {item[:100]!r}", code="invalid_mapping")
        found[header.strip()] = target.strip()
    return found


def _target(header: str, target: str) -> Column:
    if not target or target == "-":
        return Column(header)
    if target.startswith(("traits.", "trait:")):
        name = clean(target.split(".", 1)[1] if target.startswith("traits.") else target.split(":", 1)[1])
        if not name:
            raise Invalid(f"no trait name in {target!r}", code="invalid_mapping")
        return Column(header, trait=name)
    mapped = field_for(target)
    if mapped is None:
        raise Invalid(
            f"unknown field {target[:100]!r} for column {header[:100]!r}; use one of "
            f"{', '.join(FIELDS)}, traits.NAME, or nothing to skip the column",
            code="invalid_mapping",
        )
    return Column(header, field=mapped)


def resolve_columns(headers: Sequence[str], mapping: Mapping[str, str] | None = None) -> list[Column]:
    """Each header's destination, given the caller's mapping (keys: a header as written, or cleaned)."""
    mapping = dict(mapping or {})
    by_clean = {clean(k): v for k, v in mapping.items()}
    unknown = [k for k in mapping if k not in headers and clean(k) not in {clean(h) for h in headers}]
    if unknown:
        raise Invalid(
            f"the file has no column {', '.join(repr(u[:100]) for u in unknown)}", code="unknown_column"
        )
    columns: list[Column] = []
    for header in headers:
        if header in mapping or clean(header) in by_clean:
            target = mapping[header] if header in mapping else by_clean[clean(header)]
            columns.append(_target(header, target))
        elif not clean(header):
            columns.append(Column(header))
        elif (known := field_for(header)) is not None:
            columns.append(Column(header, field=known))
        else:
            columns.append(Column(header, trait=clean(header)))
    if not any(c.field == "email" for c in columns):
        raise Invalid("the file needs an email column (or --map HEADER=email)", code="missing_email_column")
    return columns


@dataclass
class ParsedRow:
    line: int
    email: str
    user_id: str | None
    changes: ProfileChanges
    company_name: str | None = None
    company_domain: str | None = None
    tags: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)


def cells(record: Sequence[str], columns: Sequence[Column]) -> dict[str, str]:
    """The row's non-blank values by header (kept with a rejected row, so it can be fixed and re-sent)."""
    return {c.header: v.strip() for c, v in zip(columns, record, strict=False) if v and v.strip()}


def region(country: str | None, default: str | None) -> str | None:
    """The phone region for a row: its ``country`` when that is a two-letter code phonenumbers knows."""
    code = (country or "").strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else default


def _fields(record: Sequence[str], columns: Sequence[Column]) -> tuple[dict[str, str], dict[str, str]]:
    values: dict[str, str] = {}
    traits: dict[str, str] = {}
    for column, cell in zip(columns, record, strict=False):
        text = (cell or "").strip()
        if not text:
            continue  # a blank cell never erases a value, nor a filled alias column
        if column.field is not None:
            values[column.field] = text
        elif column.trait is not None:
            traits[column.trait] = text
    return values, traits


def email_of(record: Sequence[str], columns: Sequence[Column]) -> str | None:
    """The row's canonical email, or None when it has none or an invalid one (the duplicate scan)."""
    values, _ = _fields(record, columns)
    try:
        return canonical_email(values["email"]) if values.get("email") else None
    except Invalid:
        return None


def parse_row(
    line: int, record: Sequence[str], columns: Sequence[Column], phone_region: str | None
) -> ParsedRow:
    """Validate one CSV record; raises :class:`Invalid` with the reason."""
    values, traits = _fields(record, columns)
    if not values.get("email"):
        raise Invalid("email is required", code="missing_email")
    changes = ProfileChanges(email=canonical_email(values["email"]))
    if values.get("phone"):
        changes.phone = normalize.phone(values["phone"], region(values.get("country"), phone_region))
    if values.get("timezone"):
        changes.timezone = normalize.timezone(values["timezone"])
    if values.get("lifecycle_stage"):
        changes.lifecycle_stage = stages.validate(values["lifecycle_stage"].lower())
    for name in ("first_name", "last_name", "owner_id"):
        if values.get(name):
            setattr(changes, name, values[name])
    if values.get("country"):
        traits["country"] = values["country"]
    changes.traits = dict(traits)
    domain = None
    if values.get("company_domain"):
        domain = company_domain(values["company_domain"])
        if domain is None:
            raise Invalid(f"invalid company domain {values['company_domain'][:100]!r}", code="invalid_domain")
    named = [t for t in _TAG_SEPARATORS.split(values.get("tags", "")) if t.strip()]
    return ParsedRow(
        line=line,
        email=changes.email,
        user_id=values.get("user_id") or None,
        changes=changes,
        company_name=values.get("company_name"),
        company_domain=domain,
        tags=tags.normalise(named) if named else [],
        values=cells(record, columns),
    )


def _rows(handle: io.TextIOBase | io.StringIO) -> Rows:
    reader = csv.reader(handle)
    for record in reader:
        yield reader.line_num, record


def read_csv(path: Path) -> Opener:
    """Opens the file afresh each time it is called (the import reads it twice: scan, then import)."""

    def rows() -> Rows:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            yield from _rows(handle)

    return rows


def read_text(text: str) -> Opener:
    def rows() -> Rows:
        yield from _rows(io.StringIO(text.removeprefix("\ufeff"), newline=""))

    return rows
