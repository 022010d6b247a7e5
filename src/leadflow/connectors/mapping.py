"""The declarative field mapping of a connector: what of a contact is written to which remote field.

A mapping is a list of entries, each naming one remote field (``to``) and where its value comes from:

- ``"from": "<path>"`` — a contact field (``email``, ``first_name``, ``last_name``, ``phone``,
  ``lifecycle_stage``, ``subscription_status``, ``timezone``, ``user_id``, ``created_at``,
  ``updated_at``), a trait (``traits.plan``), the company (``company.name``, ``company.domain``,
  ``company.industry``, ``company.traits.<name>``), the score (``score``, ``band``), the lead's owner
  (``owner.email``, ``owner.name``) or a consent entry (``consent.<purpose>``);
- ``"from": ["<path>", ...]`` with a ``join`` transform — several values joined;
- ``"const": <value>`` — a constant.

Transforms (``transform``): ``"rename"`` (the default: the value as it is), ``"e164"`` (a phone number
in E.164, read in the installation's default region when it has no country code; unreadable → no
value), ``{"date": "<strftime format>"}`` (``"%Y-%m-%d"``; ``"epoch_ms"`` for vendors that want
milliseconds), ``{"enum": {"<local>": "<remote>"}, "default": <value>}``, ``{"join": "<separator>"}``,
``"owner"`` (an owner's email → the vendor's owner id, looked up by the vendor) and ``"string"``.

A value that is missing (``None``) is not written at all: a mapping never clears a remote field by
accident. An entry is *pullable* (a remote change of it may come back into leadflow) when it reads a
single contact field or trait with no transform, ``e164`` or an ``enum`` (read in reverse).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import phonenumbers

from leadflow.kernel.errors import Invalid

CONTACT_FIELDS = frozenset(
    {
        "id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "lifecycle_stage",
        "subscription_status",
        "timezone",
        "user_id",
        "created_at",
        "updated_at",
    }
)
#: Contact fields a pull may change (the rest are leadflow's own). ``subscription_status``: an
#: unsubscribe made at the vendor (Mailchimp, Kit, an ActiveCampaign list) comes back into leadflow.
PULLABLE_FIELDS = frozenset(
    {"email", "first_name", "last_name", "phone", "lifecycle_stage", "timezone", "subscription_status"}
)
ROOTS = frozenset({"traits", "company", "owner", "consent"})
SIMPLE = frozenset({"rename", "e164", "owner", "string"})
OWNER = "owner"
MAX_ENTRIES = 200


@dataclass(frozen=True)
class Entry:
    to: str
    source: tuple[str, ...]  # one path, or several for a join; () for a constant
    transform: str | Mapping[str, Any]
    const: Any = None

    @property
    def pullable(self) -> bool:
        if len(self.source) != 1 or self.const is not None:
            return False
        path = self.source[0]
        if not (path in PULLABLE_FIELDS or path.startswith("traits.")):
            return False
        return self.transform in ("rename", "e164") or (
            isinstance(self.transform, Mapping) and "enum" in self.transform
        )


def _path(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise Invalid("a mapping's 'from' is a field path", code="invalid_mapping")
    root = value.split(".", 1)[0]
    if value in CONTACT_FIELDS or value in ("score", "band") or (root in ROOTS and "." in value):
        return value
    raise Invalid(f"unknown field {value!r} in the mapping", code="invalid_mapping")


def _transform(value: Any) -> str | Mapping[str, Any]:
    if value is None:
        return "rename"
    if isinstance(value, str) and value in SIMPLE:
        return value
    if isinstance(value, Mapping) and len(set(value) - {"default"}) == 1:
        kind = next(iter(set(value) - {"default"}))
        given = value[kind]
        if kind == "enum" and isinstance(given, Mapping):
            return value
        if kind in ("date", "join") and isinstance(given, str):
            return value
    raise Invalid(f"unknown transform {value!r}", code="invalid_mapping")


def parse(raw: Any) -> list[Entry]:
    """Check a mapping as given by the API; an error names what is wrong (``invalid_mapping``)."""
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise Invalid(f"a mapping is a list of at most {MAX_ENTRIES} entries", code="invalid_mapping")
    entries: list[Entry] = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("to"), str) or not item["to"]:
            raise Invalid("each mapping entry names its remote field in 'to'", code="invalid_mapping")
        transform = _transform(item.get("transform"))
        if "const" in item:
            entries.append(Entry(item["to"], (), transform, item["const"]))
            continue
        source = item.get("from")
        paths = tuple(_path(p) for p in source) if isinstance(source, list) else (_path(source),)
        if len(paths) > 1 and not (isinstance(transform, Mapping) and "join" in transform):
            raise Invalid("several 'from' fields need a join transform", code="invalid_mapping")
        entries.append(Entry(item["to"], paths, transform))
    return entries


def lookup(view: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path of a contact's view (``None`` when absent)."""
    value: Any = view
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def e164(value: Any, region: str | None) -> str | None:
    if not value:
        return None
    try:
        number = phonenumbers.parse(str(value), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _date(value: Any, form: str) -> Any:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, date):
        return None
    if form == "epoch_ms":
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        moment = value
        return int(moment.timestamp() * 1000)
    return value.strftime(form)


def apply(
    entry: Entry,
    view: Mapping[str, Any],
    *,
    region: str | None = None,
    owners: Callable[[str], str | None] | None = None,
) -> Any:
    """One remote field's value for a contact's view (``None``: not written)."""
    if entry.const is not None:
        return entry.const
    values = [lookup(view, path) for path in entry.source]
    how = entry.transform
    if isinstance(how, Mapping):
        if "join" in how:
            parts = [str(v) for v in values if v not in (None, "")]
            return str(how["join"]).join(parts) or None
        value = values[0]
        if "enum" in how:
            return how["enum"].get(value, how.get("default")) if value is not None else how.get("default")
        return _date(value, str(how["date"]))
    value = values[0]
    if value is None:
        return None
    if how == "e164":
        return e164(value, region)
    if how == OWNER:
        return owners(str(value)) if owners is not None else None
    if how == "string" or isinstance(value, datetime):
        return value.isoformat() if isinstance(value, datetime) else str(value)
    return value


def render(
    entries: Sequence[Entry],
    view: Mapping[str, Any],
    *,
    region: str | None = None,
    owners: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """Every remote field the mapping writes for this contact (missing values left out)."""
    found: dict[str, Any] = {}
    for entry in entries:
        value = apply(entry, view, region=region, owners=owners)
        if value is not None:
            found[entry.to] = value
    return found


def reverse(entry: Entry, remote: Any, region: str | None = None) -> tuple[str, Any] | None:
    """A remote value read back as ``(local path, value)``; ``None`` when it cannot be read back."""
    if not entry.pullable:
        return None
    path = entry.source[0]
    how = entry.transform
    if isinstance(how, Mapping):
        back = {str(v): k for k, v in how["enum"].items()}
        if str(remote) not in back:
            return None
        return path, back[str(remote)]
    if how == "e164":
        return path, e164(remote, region)
    return path, remote
