"""Chaos for the vendors with batch APIs: contacts synced to HubSpot (batch upserts of 100), Salesforce
(sObject Collections) and Mailchimp (batch subscribe), 100 records a request, all at once, by two
connector-worker processes on PostgreSQL, under 5 % 5xx, 1 % timeouts, bursts of 429 (Salesforce's own
form: 403 REQUEST_LIMIT_EXCEEDED) and 6 SIGKILLs — see :mod:`tests.integration.connectors.chaos` for
the run and what is checked after it.

Sizes: 10,000 contacts to HubSpot and the first 2,000 of them to Salesforce and Mailchimp by default, to
keep the suite cheap; ``LEADFLOW_CHAOS_CONTACTS=10000`` runs the issue's figure for all three (90 to 106 s
to drain at load 8-10 on the shared 2-core machine, recorded in docs/benchmarks.md). Pipedrive,
ActiveCampaign and Kit: ``test_chaos_per_person.py``, a file of its own so that xdist runs the two on
different workers. SQLite (one writer, one worker) is left to the in-process tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.connectors import chaos
from tests.peers import hubspot, mailchimp, salesforce
from tests.peers.saas import SaasPeer

pytestmark = pytest.mark.postgres_only

HUBSPOT = chaos.size(10_000)
SMALL = chaos.size(2_000)  # contacts synced to Salesforce and Mailchimp (the first of HubSpot's)
# records a write: HubSpot's batch maximum; Salesforce and Mailchimp below theirs (200, 500) so that
# their 2,000 take enough requests to meet faults (the seeds put a 5xx and a timeout among each
# peer's first dozen requests)
BATCH = 100


@pytest.fixture
def postgres() -> Iterator[str]:
    yield from chaos.postgres()


def _hubspot(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, hubspot.HubSpotPeer)
    found: dict[str, dict[str, Any]] = {}
    for record in peer.records():
        email = record["properties"]["email"]
        assert email not in found, f"{email} twice in HubSpot"
        found[email] = record["properties"]
    return found


def _salesforce(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, salesforce.SalesforcePeer)
    found: dict[str, dict[str, Any]] = {}
    for record in peer.find("Lead"):
        email = record["Email"]
        assert email not in found, f"{email} twice in Salesforce"
        found[email] = record
    return found


def _mailchimp(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, mailchimp.MailchimpPeer)
    with peer.lock:
        members = list(peer.audiences[mailchimp.LIST_ID].members.values())
    found: dict[str, dict[str, Any]] = {}
    for member in members:
        assert member.email not in found, f"{member.email} twice in Mailchimp"
        found[member.email] = {"email_address": member.email, "status": member.status, **member.merge_fields}
    return found


@pytest.mark.timeout(chaos.budget(HUBSPOT + 2 * SMALL) + 60)
def test_batch_vendors_survive_faults_and_sigkills(postgres: str, tmp_path: Path) -> None:
    with (
        hubspot.HubSpotPeer(limit=1_000_000, daily=10_000_000, seed=124) as hub,
        salesforce.SalesforcePeer(daily_limit=10_000_000, seed=76) as force,
        mailchimp.MailchimpPeer(max_connections=100, seed=39) as chimp,
    ):
        targets = [
            chaos.Target(
                "hubspot", "hubspot", hub, {"access_token": hubspot.TOKEN}, BATCH, HUBSPOT, _hubspot
            ),
            chaos.Target(
                "salesforce",
                "salesforce",
                force,
                {"session_id": salesforce.SESSION_ID},
                BATCH,
                SMALL,
                _salesforce,
            ),
            chaos.Target(
                "mailchimp",
                "mailchimp",
                chimp,
                {"api_key": mailchimp.API_KEY, "list_id": mailchimp.LIST_ID},
                BATCH,
                SMALL,
                _mailchimp,
            ),
        ]
        met = chaos.run(postgres, tmp_path, targets, seed=20261207)
    assert met["kills"] == chaos.KILLS
