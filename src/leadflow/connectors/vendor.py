"""The interface every vendor module implements (``hubspot.py`` today; Salesforce, Pipedrive,
ActiveCampaign, Mailchimp and Kit next), and the values that cross it.

The shared machinery (:mod:`leadflow.connectors.worker`) does everything that is not the vendor's
protocol: it claims due outbox rows, coalesces them per record, reads the local records in one query
per kind, renders the mapping, keeps identity links, paces calls with a token bucket per connector,
retries with backoff, dead-letters, audits every field and applies pulled changes with the conflict
policy. A vendor only speaks its API:

- :meth:`Vendor.write` — write a batch of one kind (at most :attr:`Vendor.batch_size` records). Each
  :class:`Record` carries ``remote_id`` when the record was written before (write by id: an email change
  updates the same remote record) or else ``match`` (the upsert key: the email for a person); one
  :class:`Written` per record, in any order, keyed by ``local_id``. A record the vendor answers
  "several match" for is ``CONFLICT`` with the ``candidates`` (Salesforce ``300``): nothing is written,
  a human decides. A record the vendor refuses for good (bad data) is ``FAILED``; a record worth trying
  again ``RETRY``.
- A failure of the whole call raises :class:`VendorError`: ``retry`` (5xx, timeouts, connection
  errors, 429 with ``retry_after``) or not (401/403, bad configuration).
- :meth:`Vendor.erase` — GDPR: delete (or anonymise, where the vendor allows no more) the people with
  these remote ids.
- :meth:`Vendor.changes` — remote changes of people since a modification time (the pull), oldest
  first; ``[]`` for a vendor without change polling.
- :meth:`Vendor.check` — a cheap authenticated call (the API's "test connection").
- :meth:`Vendor.calls` — how many HTTP requests a write of ``n`` records of a kind costs (the worker
  takes that many tokens from the connector's bucket before calling, else the batch waits).
- :meth:`Vendor.properties` — the remote fields of a company, deal or activity from leadflow's row
  (``crm_deals``, ``crm_activities``, ``companies`` columns); people go through the mapping instead.
- :attr:`Vendor.rate_seen` — what the last answer's rate headers said (``X-HubSpot-RateLimit-*``,
  ``x-ratelimit-*``, ``Sforce-Limit-Info``), so the bucket follows the vendor's own count.

Kinds: ``contact`` (person/lead/member/subscriber), ``company`` (account/organisation), ``deal``
(opportunity), ``activity`` (note/call/task). A kind the vendor does not sync is not in
:attr:`Vendor.kinds`; rows of it are dropped with the reason "not synced by <vendor>".

A vendor module registers a :data:`Factory` in :mod:`leadflow.connectors.registry`; the factory gets
the unsealed credentials (a dict, as given by the API), the host (``None``: the vendor's own), the
:class:`Network` (the network guard's check and the timeout) and the connector's ``options`` (its
non-secret settings, checked by the module's ``OPTIONS``: :mod:`leadflow.connectors.options`), and never
logs the credentials.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.netpolicy import Policy

OK, RETRY, FAILED, CONFLICT = "ok", "retry", "failed", "conflict"
CONTACT, COMPANY, DEAL, ACTIVITY = "contact", "company", "deal", "activity"
KINDS = (CONTACT, COMPANY, DEAL, ACTIVITY)


@dataclass(frozen=True)
class Record:
    """One local record to write. ``associations``: kind → remote ids it is linked to (a deal's
    contacts and company; an activity's contact)."""

    kind: str
    local_id: str
    properties: Mapping[str, Any]
    remote_id: str | None = None
    match: str | None = None
    associations: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    local_id: str
    outcome: str  # ok | retry | failed | conflict
    remote_id: str | None = None
    modified_at: datetime | None = None
    error: str | None = None
    candidates: tuple[str, ...] = ()
    # a RETRY cut short by the vendor's rate limit, or never sent (an earlier record of the batch met a
    # failure): due again after ``retry_after``, the attempt uncounted
    retry_after: timedelta | None = None
    rate_limited: bool = False


@dataclass(frozen=True)
class Change:
    """A person changed at the vendor: its remote id, email and the mapped fields' remote values."""

    remote_id: str
    email: str | None
    properties: Mapping[str, Any]
    modified_at: datetime


@dataclass(frozen=True)
class RateSeen:
    """The vendor's own count from its headers: ``remaining`` of ``limit`` in a ``window_s`` window."""

    limit: int | None
    remaining: int | None
    window_s: float | None = None


class VendorError(Exception):
    """A whole call failed. ``retry``: worth trying again (``retry_after``: what the vendor asked)."""

    def __init__(
        self,
        message: str,
        *,
        retry: bool,
        status: int | None = None,
        retry_after: timedelta | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(message)
        self.retry = retry
        self.status = status
        self.retry_after = retry_after
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Network:
    """What a vendor client needs of the installation: ``check(url)`` raises
    :class:`~leadflow.kernel.netguard.Blocked` for a host inside the network by its text alone (an
    address, ``localhost``; no DNS lookup: a name is resolved and judged once, at connect time, under
    ``policy``), ``timeout``
    in seconds, ``ca_file`` a certificate bundle to trust (a local peer's self-signed certificate),
    ``clock`` the installation's clock (a client pacing itself to a vendor's window waits on it),
    ``policy`` the guard's policy (``LEADFLOW_NETWORK_ALLOW``) a client's connections are checked by at
    connect time (:mod:`leadflow.kernel.netguard_urllib3`; the default admits nothing inside the network)."""

    check: Callable[[str], None]
    timeout: float
    ca_file: str | None = None
    clock: Clock = field(default_factory=SystemClock)
    policy: Policy = field(default_factory=Policy)


class Vendor(Protocol):
    name: ClassVar[str]
    batch_size: ClassVar[int]  # records per write call (HubSpot 100, Salesforce 200, Mailchimp 500)
    rate: ClassVar[float]  # requests per second at the documented limit
    burst: ClassVar[float]  # requests the window allows at once
    kinds: ClassVar[frozenset[str]]
    match_field: ClassVar[str]  # the remote field a first write upserts by ("email")
    rate_seen: RateSeen | None

    def check(self) -> None: ...

    def calls(self, kind: str, records: Sequence[Record]) -> int: ...

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]: ...

    def erase(self, remote_ids: Sequence[str]) -> list[Written]: ...

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]: ...

    def owners(self) -> dict[str, str]: ...  # owner email (lower-cased) → the vendor's owner id

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]: ...  # company/deal/activity

    def close(self) -> None: ...


def window_of(vendor: Vendor) -> float:
    """The fixed window, in seconds, a vendor counts its ``burst`` of requests in (its class's
    ``window``: HubSpot's 100 per 10 s); 0 for a vendor paced by a steady rate (a token bucket)."""
    return float(getattr(vendor, "window", 0.0) or 0.0)


def requests_of(vendor: Vendor) -> int | None:
    """How many requests the vendor client has sent so far (its ``requests_made``), where it counts
    them; None where it does not (its :meth:`Vendor.calls` is then exact)."""
    made = getattr(vendor, "requests_made", None)
    return made if isinstance(made, int) else None


#: (credentials, host, network, options): ``options`` the connector's non-secret settings
#: (:mod:`leadflow.connectors.options`)
Factory = Callable[[Mapping[str, Any], str | None, Network, Mapping[str, Any] | None], Vendor]
