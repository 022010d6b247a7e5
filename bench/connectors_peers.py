"""The vendor peers as ``bench/connectors.py`` runs them: each request stamped on arrival, HubSpot's
contacts found by email through an index (the test peer scans them all, too slow at 100k), each
vendor's connector settings and the ceiling its documented limit allows with its best bulk path."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from tests.peers import activecampaign, hubspot, kit, mailchimp, pipedrive, salesforce
from tests.peers.saas import Answer, Call, SaasPeer


class Stamped(SaasPeer):
    """Every request gets its arrival time (``time.time()``) in ``call.meta["at"]``."""

    def _dispatch(self, call: Call) -> Answer | None:
        call.meta["at"] = time.time()
        return super()._dispatch(call)


class HubSpot(Stamped, hubspot.HubSpotPeer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._emails: dict[str, dict[str, Any]] = {}

    def _write(self, kind: str, record: dict[str, Any], properties: dict[str, Any]) -> None:
        super()._write(kind, record, properties)
        if kind == "contacts":
            self._emails[str(record["properties"].get("email") or "").lower()] = record

    def _by_email(self, email: str | None) -> dict[str, Any] | None:
        wanted = (email or "").lower()
        found = self._emails.get(wanted)
        if found is None or found["archived"]:
            return None
        return found if str(found["properties"].get("email") or "").lower() == wanted else None


class Salesforce(Stamped, salesforce.SalesforcePeer):
    pass


class Pipedrive(Stamped, pipedrive.PipedrivePeer):
    pass


class ActiveCampaign(Stamped, activecampaign.ActiveCampaignPeer):
    pass


class Mailchimp(Stamped, mailchimp.MailchimpPeer):
    pass


class Kit(Stamped, kit.KitPeer):
    pass


@dataclass(frozen=True)
class Spec:
    """One vendor as benched: its peer, credentials, the steady ceiling (contacts/s) its documented
    limit allows for a backfill, why, and the rate of the change stream (changes/s)."""

    name: str
    make: Callable[..., SaasPeer]
    credentials: dict[str, Any]
    count: Callable[[Any], int]
    ceiling: float  # contacts/s the documented limit allows (0: none documented, see `measured`)
    why: str
    change_rate: float
    change_why: str
    measured: bool = False  # no per-second limit: the ceiling is the peer's own speed, replayed
    pace: float = 0.0  # contacts/s the connector's own documented pacing allows (where `measured`)
    pace_why: str = ""


SPECS: dict[str, Spec] = {
    "hubspot": Spec(
        "hubspot",
        HubSpot,
        {"access_token": hubspot.TOKEN},
        lambda p: sum(1 for r in p.store["contacts"].values() if not r["archived"]),
        1000.0,
        "100 requests / 10 s x 100 contacts a batch upsert",
        40.0,
        "40 changes/s, what one driver thread's contacts.patch commits (about 20 ms each, under the profile "
        "lock); written in batch updates of up to 100: at most 10 requests/s of the 10 allowed",
    ),
    "salesforce": Spec(
        "salesforce",
        Salesforce,
        {"session_id": salesforce.SESSION_ID},
        lambda p: p.count("Lead"),
        0.0,
        "no per-second limit documented (25 concurrent long requests; 100,000 requests/24 h = "
        "231 contacts/s over a day at 200 a collection): the ceiling is the peer's speed for the same "
        "requests, replayed by a plain client",
        100.0,
        "100 changes/s (collections PATCH by id, under 1 request/s of the connector's 20)",
        measured=True,
        pace=4000.0,
        pace_why="the connector's pace: 20 requests/s (its bucket) x collections of 200",
    ),
    "pipedrive": Spec(
        "pipedrive",
        Pipedrive,
        {"api_token": pipedrive.TOKEN},
        lambda p: p.count("person"),
        5.0,
        "a new person is an exact-email search then a create; search is 10 requests per 2-s window "
        "(general 80 per 2 s): 5 persons/s",
        10.0,
        "10 changes/s (one PATCH each: 25 % of the 80 per 2 s)",
    ),
    "activecampaign": Spec(
        "activecampaign",
        ActiveCampaign,
        {"api_token": activecampaign.TOKEN},
        lambda p: p.count(),
        250.0,
        "bulk_import of 250 at 5 requests/s: import + status poll + the 250 ids read back (100 a page) "
        "= 5 requests per 250 (imports alone, 100 a minute, would allow 416/s)",
        2.5,
        "2.5 changes/s (one contact/sync each: 50 % of 5 requests/s)",
    ),
    "mailchimp": Spec(
        "mailchimp",
        Mailchimp,
        {"api_key": mailchimp.API_KEY, "list_id": mailchimp.LIST_ID},
        lambda p: p.count(),
        0.0,
        "no request rate documented, 10 simultaneous connections (the client uses one) and batches of "
        "500: the ceiling is the peer's speed for the same requests, replayed by a plain client",
        5.0,
        "5 changes/s (one PUT each: 50 % of the connector's 10 requests/s)",
        measured=True,
        pace=5000.0,
        pace_why="the connector's pace: 10 requests/s (its bucket) x batches of 500",
    ),
    "kit": Spec(
        "kit",
        Kit,
        {"api_key": kit.API_KEY},
        lambda p: p.count(),
        2.0,
        "120 requests per rolling 60 s per API key, one subscriber a request (the bulk endpoint needs "
        "OAuth, which an API-key connector does not have)",
        1.0,
        "1 change/s (one PUT each: 50 % of 2 requests/s)",
    ),
}


def replay(peer: SaasPeer, fresh: SaasPeer, records: int) -> float:
    """The ceiling of a vendor with no per-second limit: the successful requests ``peer`` received,
    sent again in order to a fresh peer of the same kind by a plain ``httpx`` client on one keep-alive
    connection (no database, no pacing); the contacts/s that makes."""
    calls = [c for c in peer.calls if 200 <= c.status < 300]
    skip = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
    verify: Any = fresh.ssl_context() if fresh.tls else False
    with httpx.Client(base_url=fresh.url, verify=verify, timeout=60) as client:
        started = time.perf_counter()
        for call in calls:
            headers = {k: v for k, v in call.headers.items() if k not in skip}
            query = [(k, v) for k, values in call.query.items() for v in values]
            answer = client.request(call.method, call.path, params=query, headers=headers, content=call.body)
            if answer.status_code >= 300:
                raise RuntimeError(f"replay: {call.method} {call.path} answered {answer.status_code}")
        return records / (time.perf_counter() - started)
