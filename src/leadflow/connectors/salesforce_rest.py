"""The parts of the Salesforce connector (:mod:`leadflow.connectors.salesforce`) that are not calls: the
``requests`` session it hands to ``simple-salesforce`` (the network guard before every request, the
timeout, a test peer's CA), Salesforce's times and error bodies read, and the Account, Opportunity and
Task fields made from leadflow's rows."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests

from leadflow.connectors.vendor import COMPANY, DEAL, Network
from leadflow.kernel.netguard_urllib3 import session_guard

EXCERPT = 300
DEAL_STAGES = {"open": "Prospecting", "won": "Closed Won", "lost": "Closed Lost"}
CLOSE_AFTER = timedelta(days=30)  # an opportunity needs a CloseDate: created + 30 days when none is expected
_IDS = re.compile(r"\[([^\]]*)\]")


class GuardedSession(requests.Session):
    """A ``requests`` session that asks the network guard before every request and sets a timeout, on
    a :class:`~leadflow.kernel.netguard_urllib3.GuardedAdapter`: each connection (a redirect hop's too) is
    resolved and judged again at connect time and made to the checked address, and no proxy is read
    from the environment. ``ca_file`` (a local peer's certificate) is then the only trust."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.network = network
        session_guard(self, network.policy)
        if network.ca_file:
            self.verify = network.ca_file
            self.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise win over `verify`

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        self.network.check(url.decode() if isinstance(url, bytes) else url)
        kwargs.setdefault("timeout", self.network.timeout)
        return super().request(method, url, *args, **kwargs)


def parse_time(value: Any) -> datetime | None:
    """``2026-01-01T09:00:00.000+0000`` (Salesforce's datetimes) as an aware UTC datetime."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value.replace("Z", "+00:00"))
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text).astimezone(UTC)
    return None


def day_of(value: Any) -> date | None:
    """A date from a date, a datetime (its UTC day) or their ISO text (exports give strings)."""
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value if isinstance(value, date) else None


def soql_time(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def errors_of(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [e for e in content if isinstance(e, dict)]
    if isinstance(content, dict):
        return [content]
    return []


def first_error(errors: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The first error's code and message."""
    for found in errors:
        code = str(found.get("errorCode") or found.get("statusCode") or "")
        return code, str(found.get("message") or "")[:EXCERPT]
    return "", ""


def candidates_of(content: Any) -> tuple[str, ...]:
    """The ids of a ``300``'s matching records (a list of record URLs)."""
    urls = content if isinstance(content, list) else []
    return tuple(str(url).rstrip("/").rsplit("/", 1)[-1] for url in urls if isinstance(url, str))


def duplicate_ids(message: str) -> tuple[str, ...]:
    """The record ids in a collection's ``DUPLICATE_EXTERNAL_ID`` message (``...: [id1, id2]``)."""
    found = _IDS.search(message)
    return tuple(i.strip() for i in found.group(1).split(",") if i.strip()) if found else ()


def fields_of(kind: str, row: Mapping[str, Any], stages: Mapping[str, str]) -> dict[str, Any]:
    """An Account, Opportunity or Task from leadflow's company, deal or activity row (see the vendor)."""
    if kind == COMPANY:
        domain = row.get("domain")
        found = {"Name": row.get("name"), "Website": domain, "Industry": row.get("industry")}
    elif kind == DEAL:
        status = str(row.get("status") or "open")
        stage = stages.get(str(row.get("stage_id"))) if status == "open" else None
        created = day_of(row.get("created_at"))
        close = day_of(row.get("expected_close")) or (created + CLOSE_AFTER if created else None)
        value = row.get("value")
        found = {
            "Name": row.get("title"),
            "Amount": float(value) if value is not None else None,
            "StageName": stage or DEAL_STAGES.get(status, DEAL_STAGES["open"]),
            "CloseDate": close.isoformat() if close else None,
        }
    else:
        moment = day_of(row.get("occurred_at"))
        found = {
            "Subject": str(row.get("subject") or str(row.get("kind") or "note").capitalize())[:255],
            "Description": row.get("body"),
            "Status": "Completed",
            "ActivityDate": moment.isoformat() if moment else None,
            "TaskSubtype": "Call" if row.get("kind") == "call" else "Task",
        }
    return {k: v for k, v in found.items() if v is not None}
