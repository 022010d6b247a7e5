"""Chaos for the vendors written a person at a time: Pipedrive (search by exact email, then create or
update), ActiveCampaign by ``contact/sync`` (batches under its bulk threshold) and by its bulk import
(batches of 100: import, poll, ids read back) — two accounts — and Kit (upsert by email), by two
connector-worker processes on PostgreSQL, under 5 % 5xx, 1 % timeouts, bursts of 429 in each vendor's
own form (Pipedrive's and ActiveCampaign's with ``Retry-After``, Kit's without) and 6 SIGKILLs — see
:mod:`tests.integration.connectors.chaos` for the run and what is checked after it.

Sizes: 500 contacts to each connector by default, so the file stays cheap; ``LEADFLOW_CHAOS_CONTACTS=10000``
runs the issue's figure (recorded in docs/benchmarks.md). The peers' limits (Pipedrive's 2-s windows,
its search window and daily budget, ActiveCampaign's 5 a second and 100 imports a minute, Kit's 120 a
minute) are raised far above the pace of the run, and so is the connector's own pacing of Pipedrive's
searches (in the worker processes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.connectors import chaos
from tests.peers import activecampaign, kit, pipedrive
from tests.peers.saas import SaasPeer, WindowLimit

pytestmark = pytest.mark.postgres_only

SIZE = chaos.size(500)
MANY = 10**9  # a rate limit the run never meets
PASS = 100  # rows a worker claims a pass: written within the scaled lease (see chaos.run)


@pytest.fixture
def postgres() -> Iterator[str]:
    yield from chaos.postgres()


def _pipedrive(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, pipedrive.PipedrivePeer)
    found: dict[str, dict[str, Any]] = {}
    for person in peer.find("person"):
        emails = [str(e["value"]) for e in person.get("emails") or []]
        phones = [str(p["value"]) for p in person.get("phones") or []]
        assert len(emails) == 1, person
        assert emails[0] not in found, f"{emails[0]} twice in Pipedrive"
        found[emails[0]] = {
            "email": emails[0],
            "first_name": person.get("first_name"),
            "last_name": person.get("last_name"),
            **({"phone": phones[0]} if phones else {}),
        }
    return found


def _activecampaign(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, activecampaign.ActiveCampaignPeer)
    with peer.lock:
        people = list(peer.contacts.values())
    found: dict[str, dict[str, Any]] = {}
    for contact in people:
        assert contact.email not in found, f"{contact.email} twice in ActiveCampaign"
        found[contact.email] = {"email": contact.email, "firstName": contact.first_name}
        found[contact.email] |= {
            "lastName": contact.last_name,
            **({"phone": contact.phone} if contact.phone else {}),
        }
    return found


def _kit(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, kit.KitPeer)
    with peer.lock:
        people = list(peer.subscribers.values())
    found: dict[str, dict[str, Any]] = {}
    for subscriber in people:
        email = subscriber.email_address
        assert email not in found, f"{email} twice in Kit"
        state = {"active": "subscribed", "cancelled": "unsubscribed"}.get(subscriber.state, subscriber.state)
        found[email] = {"email_address": email, "first_name": subscriber.first_name, "state": state}
    return found


@pytest.mark.timeout(chaos.budget(4 * SIZE) + 60)
def test_per_person_vendors_survive_faults_and_sigkills(postgres: str, tmp_path: Path) -> None:
    with (
        pipedrive.PipedrivePeer(limit=MANY, search_limit=MANY, daily_limit=MANY, seed=11) as drive,
        activecampaign.ActiveCampaignPeer(rate=MANY, seed=12) as synced,
        activecampaign.ActiveCampaignPeer(rate=MANY, seed=167) as imported,
        kit.KitPeer(api_key_limit=MANY, seed=14) as kits,
    ):
        imported.import_window = WindowLimit(MANY, 60.0)
        account = {"api_token": activecampaign.TOKEN}
        targets = [
            chaos.Target(
                "pipedrive", "pipedrive", drive, {"api_token": pipedrive.TOKEN}, 25, SIZE, _pipedrive
            ),
            # under BULK_MIN new people a batch: every first write a contact/sync
            chaos.Target("activecampaign-sync", "activecampaign", synced, account, 10, SIZE, _activecampaign),
            # 100 new people a batch: the bulk import, its polls and the ids read back
            chaos.Target(
                "activecampaign-import", "activecampaign", imported, account, 100, SIZE, _activecampaign
            ),
            chaos.Target("kit", "kit", kits, {"api_key": kit.API_KEY}, 20, SIZE, _kit),
        ]
        met = chaos.run(postgres, tmp_path, targets, seed=20261208, rows=PASS)
    assert met["kills"] == chaos.KILLS
    with imported.lock:
        assert imported.imports, "the bulk import path was not taken"
    with synced.lock:
        assert not synced.imports, "a contact/sync batch went through the bulk import"
