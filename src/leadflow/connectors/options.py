"""A connector's ``options``: the vendor settings that are no secret (Pipedrive's pipeline and stages,
Salesforce's people object and external-id field, Mailchimp's audience), stored as plain JSON beside
the sealed credentials, shown by the API, the CLI and the console, and changed like any other setting.

Each vendor module declares the options it reads (``OPTIONS``: name → check) and reads them through
:func:`merged`: an option given in ``options`` wins; a connector made before options existed kept them
in its credentials, and those are still read there (no migration: the credentials are sealed with the
secret key, which a migration does not hold). Setting the option in ``options`` overrides the old value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from leadflow.kernel.errors import Invalid

Check = Callable[[str, Any], Any]  # (option name, given value) → the stored value, or raises Invalid
MAX_ENTRIES = 200


def _bad(name: str, what: str) -> Invalid:
    return Invalid(f"option {name} is {what}", code="invalid_option")


def positive_id(name: str, value: Any) -> int:
    """A vendor's numeric id (``5`` or ``"5"``)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 2**53:
        raise _bad(name, "a positive whole number (the vendor's id)")
    return value


def text(pattern: str, what: str) -> Check:
    """A string matching ``pattern`` (whole), at most 200 characters."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) > 200 or not re.fullmatch(pattern, value):
            raise _bad(name, what)
        return value

    return check


def one_of(*choices: str) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in choices:
            raise _bad(name, " or ".join(choices))
        return str(value)

    return check


def mapping_of(values: Check, what: str) -> Check:
    """An object: leadflow's ids (text) → a value checked by ``values``."""

    def check(name: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or len(value) > MAX_ENTRIES:
            raise _bad(name, f"an object of leadflow ids → {what}")
        found: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or len(key) > 64:
                raise _bad(name, f"an object of leadflow ids → {what}")
            found[key] = values(f"{name}.{key}", item)
        return found

    return check


def checked(vendor: str, known: Mapping[str, Check], raw: Any) -> dict[str, Any]:
    """The stored form of a connector's options for ``vendor``: an unknown name is ``unknown_option``,
    a bad value ``invalid_option`` (both 422)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise Invalid("options is an object", code="invalid_option")
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        offered = ", ".join(sorted(known)) or "none"
        raise Invalid(
            f"{vendor} has no option {', '.join(unknown)} (its options: {offered})", code="unknown_option"
        )
    return {name: known[name](name, value) for name, value in raw.items() if value is not None}


def merged(
    known: Mapping[str, Check], options: Mapping[str, Any] | None, credentials: Mapping[str, Any]
) -> dict[str, Any]:
    """The options a vendor client reads: each from ``options``, else (a connector made before options
    existed) from the credentials."""
    given = dict(options or {})
    return {name: given[name] if name in given else credentials.get(name) for name in known}
