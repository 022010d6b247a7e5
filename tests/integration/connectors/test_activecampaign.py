"""ActiveCampaign (v3, httpx) against its peer over a socket, on both databases: the event-registration
profile, identity by id, tags and lists, deals and notes, bulk import, pulls, unsubscribes, erasure and
the rate limit. The worker runs pass by pass on the virtual clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import outbox
from leadflow.connectors import service as connectors
from leadflow.connectors.activecampaign import BULK_MIN, EVENT_REGISTRATION, ActiveCampaignVendor
from leadflow.connectors.models import connector_audit, connector_links, connector_outbox
from leadflow.connectors.vendor import CONTACT, Network, Record
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.models import contacts as contact_rows
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Upstream
from leadflow.kernel.ids import new_id
from leadflow.kernel.netpolicy import Policy
from tests.integration.connectors.conftest import drain, identify
from tests.peers.activecampaign import SUBSCRIBED, TOKEN, UNSUBSCRIBED, ActiveCampaignPeer
from tests.support.contacts import by_user

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
LOCAL = Policy.parse("127.0.0.1")  # the guard admitting the local peer, for a vendor made by hand

MAPPING = [
    *connectors.VENDORS["activecampaign"].presets["event_registration"],  # the shipped preset
    {"from": "traits.tags", "to": "tags"},
    {"from": "subscription_status", "to": "list:Newsletter"},
]
PROFILE = {
    "email": "Bea@Example.com",
    "firstName": "Bea",
    "lastName": "Badge",
    "phone": "+1 415 555 0101",
    "date_of_birth": "1990-05-17",
    "event_participation": ["RustConf 2026", "PyCon 2026"],
    "dietary_preferences": "vegetarian",
    "volunteering_interests": ["registration desk", "stage crew"],
    "social_media_handles": {"mastodon": "@bea@example.social", "github": "beabadge"},
    "badge_name": "Bea B.",
    "profile_image_url": "https://img.example.com/bea.png",
    "emergency_contact_name": "Cal Badge",
    "emergency_contact_phone": "+1 415 555 0199",
    "tags": ["speaker", "volunteer"],
}


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[ActiveCampaignPeer]:
    with ActiveCampaignPeer(clock=clock.monotonic, now=clock.now, rate=1000) as running:
        running.seed_fields()
        yield running


def connect(ctx: AppContext, peer: ActiveCampaignPeer, **settings: Any) -> str:
    values = {
        "vendor": "activecampaign",
        "name": "ActiveCampaign",
        "credentials": {"api_token": TOKEN},
        "host": peer.url,
        "mapping": MAPPING,
        "limits": {"rate": 1000, "burst": 1000},
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def _rows(ctx: AppContext, table: sa.Table, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return list(conn.execute(query))


def test_event_registration_profile_lands_completely_with_tags_and_list(
    ctx: AppContext, processor: EventProcessor, peer: ActiveCampaignPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "b1", **PROFILE)
    drain(worker)
    remote = peer.contact("bea@example.com")
    assert remote is not None
    assert (remote.first_name, remote.last_name, remote.phone) == ("Bea", "Badge", "+14155550101")
    assert peer.field_values("bea@example.com") == {
        "Date of Birth": "1990-05-17",
        "Event Participation": "RustConf 2026, PyCon 2026",
        "Dietary Preferences": "vegetarian",
        "Volunteering Interests": "registration desk, stage crew",
        "Social Media Handles": "github: beabadge\nmastodon: @bea@example.social",
        "Badge Name": "Bea B.",
        "Profile Image URL": "https://img.example.com/bea.png",
        "Emergency Contact Name": "Cal Badge",
        "Emergency Contact Phone": "+14155550199",
    }
    assert peer.tags_of("bea@example.com") == {"speaker", "volunteer"}  # created when missing
    assert peer.lists_of("bea@example.com") == {"Newsletter": SUBSCRIBED}
    assert len(peer.calls_to("GET", r"/api/3/fields")) == 1  # ids looked up once, then cached
    assert _rows(ctx, connector_outbox) == []
    assert len(EVENT_REGISTRATION) == 13  # names, email, phone and the nine profile fields


def test_update_and_email_change_keep_one_contact_and_a_leadflow_unsubscribe_reaches_the_list(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "u1", email="ann@example.com", firstName="Ann", tags=["lead"])
    drain(worker)
    first = peer.contact("ann@example.com")
    assert first is not None
    assert peer.calls_to("POST", r"/api/3/contact/sync")
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com", lastName="Lee")
    drain(worker)
    assert peer.count() == 1
    moved = peer.contact("ann.lee@example.com")
    assert moved is not None
    assert (moved.id, moved.last_name) == (first.id, "Lee")
    assert peer.calls_to("PUT", rf"/api/3/contacts/{first.id}")
    [link] = _rows(ctx, connector_links)
    assert link.remote_id == str(first.id)
    clock.advance(timedelta(minutes=1))
    contacts.patch(
        ctx, by_user(ctx, "u1")["id"], contacts.ContactPatch(subscription_status="unsubscribed"), actor="t"
    )
    drain(worker)
    assert peer.lists_of("ann.lee@example.com") == {"Newsletter": UNSUBSCRIBED}
    assert peer.count() == 1


def test_deal_and_notes_with_their_contact(
    ctx: AppContext, processor: EventProcessor, peer: ActiveCampaignPeer, worker: ConnectorWorker
) -> None:
    crm.ensure_default_pipeline(ctx)
    connect(ctx, peer, objects=["contact", "deal", "activity"])
    identify(ctx, processor, "d1", email="dee@example.com", firstName="Dee")
    deals.create(
        ctx,
        DealCreate(title="Booth package", email="dee@example.com", value=Decimal("490.50"), currency="EUR"),
        actor="t",
    )
    activities.log(
        ctx, ActivityCreate(email="dee@example.com", kind="note", body="Wants a corner"), actor="t"
    )
    processor.drain()
    drain(worker)
    remote = peer.contact("dee@example.com")
    assert remote is not None
    [deal] = peer.deals.values()
    assert (deal["title"], deal["value"], deal["currency"], deal["contact"]) == (
        "Booth package",
        "49050",
        "eur",
        str(remote.id),
    )
    [note] = peer.notes.values()
    assert note["note"].startswith("Wants a corner\n\n[leadflow ")  # the marker a repeat looks for
    assert (note["relid"], note["reltype"]) == (str(remote.id), "Subscriber")
    identify(ctx, processor, "d1", lastName="Dow")  # a later sync writes neither twice
    drain(worker)
    assert (len(peer.deals), len(peer.notes)) == (1, 1)


def test_a_backfill_goes_through_the_bulk_import_and_maps_failures_per_record(
    ctx: AppContext, processor: EventProcessor, peer: ActiveCampaignPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    for n in range(BULK_MIN + 5):
        identify(ctx, processor, f"k{n}", email=f"k{n}@example.com", firstName=f"K{n}", badge_name=f"K-{n}")
    peer.fail_import_emails = {"k3@example.com"}
    drain(worker)
    assert len(peer.calls_to("POST", r"/api/3/import/bulk_import")) == 1
    assert peer.calls_to("POST", r"/api/3/contact/sync") == []
    assert peer.count() == BULK_MIN + 4
    assert peer.field_values("k7@example.com")["Badge Name"] == "K-7"
    links = {row.local_id: row.remote_id for row in _rows(ctx, connector_links)}
    assert len(links) == BULK_MIN + 4  # every imported person's id read back
    k7 = peer.contact("k7@example.com")
    assert k7 is not None
    assert links[by_user(ctx, "k7")["id"]] == str(k7.id)
    [dead] = _rows(ctx, connector_outbox)
    assert dead.state == "dead"
    assert "import refused" in dead.last_error
    # the cost the worker takes from the bucket follows the bulk path, not one sync a person
    vendor = ActiveCampaignVendor(
        {"api_token": TOKEN}, peer.url, Network(lambda url: None, 5.0, policy=LOCAL)
    )
    fresh = [
        Record(CONTACT, str(n), {"email": f"x{n}@example.com"}, match=f"x{n}@example.com") for n in range(250)
    ]
    assert vendor.calls(CONTACT, fresh) <= 8
    vendor.close()


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_applies_each_conflict_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local", badge_name="Pat")
    drain(worker)
    writes = len(peer.calls_to(None, r"/api/3/(contact/sync|contacts/\d+)")) - 0
    clock.advance(timedelta(minutes=5))
    peer.change_remotely("pat@example.com", first_name="Remote")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "p1")["first_name"] == local_after
    reads = len(peer.calls_to("GET", r"/api/3/contacts/\d+"))
    drain(worker)
    after = len(peer.calls_to(None, r"/api/3/(contact/sync|contacts/\d+)")) - reads
    remote = peer.contact("pat@example.com")
    assert remote is not None
    if policy == "leadflow":
        assert remote.first_name == "Local"
        assert after == writes + 1
    else:
        assert remote.first_name == "Remote"
        assert after == writes
    [read] = _rows(ctx, connector_audit, direction="pull")
    assert (read.field, read.outcome) == ("firstName", "kept" if policy == "leadflow" else "applied")


def test_an_unsubscribe_from_the_list_in_activecampaign_reaches_leadflow(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": "leadflow"})
    identify(ctx, processor, "s1", email="sam@example.com")
    drain(worker)
    remote = peer.contact("sam@example.com")
    assert remote is not None
    clock.advance(timedelta(minutes=2))
    with peer.lock:
        [list_id] = peer.lists
        peer._membership(remote.id, list_id, UNSUBSCRIBED)
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "s1")["subscription_status"] == "unsubscribed"  # whatever the policy
    drain(worker)
    assert peer.lists_of("sam@example.com") == {"Newsletter": UNSUBSCRIBED}
    assert _rows(ctx, connector_outbox) == []


def test_erasure_deletes_the_contact(
    ctx: AppContext, processor: EventProcessor, peer: ActiveCampaignPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com")
    identify(ctx, processor, "e2", email="eli@example.com")
    drain(worker)
    remote = peer.contact("eve@example.com")
    assert remote is not None
    contacts.erase(ctx, by_user(ctx, "e1")["id"], actor="test")
    drain(worker)
    assert peer.calls_to("DELETE", rf"/api/3/contacts/{remote.id}")
    assert peer.contact("eve@example.com") is None
    assert peer.count() == 1
    [record] = _rows(ctx, connector_audit, direction="erase")
    assert (record.outcome, record.remote_id, record.new_value) == ("erased", str(remote.id), None)


def test_429_waits_for_retry_after_and_5xx_is_retried_and_the_rate_headers_are_read(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, limits=None)  # the vendor's own 5 a second
    peer.window.limit = 5
    identify(ctx, processor, "r1", email="rae@example.com")
    peer.faults.burst_429(1, retry_after=30)
    assert worker.run_once() == 1
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (0, clock.now() + timedelta(seconds=30))
    clock.advance(timedelta(seconds=29))
    assert worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (1, clock.now() + SCHEDULE.delays[0])
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert peer.contact("rae@example.com") is not None
    assert _rows(ctx, connector_outbox) == []
    [(_, vendor)] = worker._vendors.values()
    assert vendor.rate_seen is not None
    assert vendor.rate_seen.limit == 5


def test_at_five_requests_a_second_a_batch_cut_short_keeps_its_writes_and_waits_uncounted(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, limits=None)  # the vendor's own 5 a second, on the peer too
    peer.window.limit = 5
    for n in range(6):
        identify(ctx, processor, f"t{n}", email=f"t{n}@example.com", tags=["fair"])
    for _ in range(40):
        worker.run_once()
        assert all(row.attempts == 0 for row in _rows(ctx, connector_outbox))  # waits are not attempts
        if not _rows(ctx, connector_outbox):
            break
        clock.advance(timedelta(seconds=1))
    assert peer.count() == 6
    assert all(peer.tags_of(f"t{n}@example.com") == {"fair"} for n in range(6))
    assert any(call.status == 429 for call in peer.calls)  # the limit was met, and waited out


def test_a_bulk_import_still_processing_is_polled_then_its_people_read_back(
    peer: ActiveCampaignPeer, clock: VirtualClock
) -> None:
    peer.import_delay_s = 3.0  # ActiveCampaign processes the import a few seconds later
    vendor = ActiveCampaignVendor(
        {"api_token": TOKEN},
        peer.url,
        Network(lambda url: None, 5.0, clock=clock, policy=LOCAL),
    )
    people = [
        Record(
            CONTACT, f"l{n}", {"email": f"m{n}@example.com", "Badge Name": f"M{n}"}, match=f"m{n}@example.com"
        )
        for n in range(BULK_MIN)
    ]
    written = vendor.write(CONTACT, people)
    assert {w.outcome for w in written} == {"ok"}
    assert len(peer.calls_to("GET", r"/api/3/import/info")) == 4  # polled until processed
    assert {w.remote_id for w in written} == {
        str(peer.contact(f"m{n}@example.com").id) for n in range(BULK_MIN)
    }  # type: ignore[union-attr]
    peer.import_delay_s = 3600.0  # not finished within the polls: tried again later, nothing lost
    again = vendor.write(CONTACT, [Record(r.kind, r.local_id, r.properties, match=r.match) for r in people])
    assert {w.outcome for w in again} == {"retry"}
    imports = len(peer.calls_to("POST", r"/api/3/import/bulk_import"))
    peer.import_delay_s = 0.0
    third = vendor.write(CONTACT, [Record(r.kind, r.local_id, r.properties, match=r.match) for r in people])
    assert {w.outcome for w in third} == {"ok"}
    assert len(peer.calls_to("POST", r"/api/3/import/bulk_import")) == imports  # the running one, polled
    vendor.close()


def test_a_1000_contact_backfill_at_five_requests_a_second_draws_no_429(
    ctx: AppContext,
    processor: EventProcessor,
    peer: ActiveCampaignPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connector_id = connect(ctx, peer, limits=None)  # the vendor's own 5 a second, on the peer too
    peer.window.limit = 5
    peer.seed_list("Newsletter")  # the mapping's fields and list are looked up: the first import is cut
    now = clock.now()
    rows = [
        {
            "id": new_id(),
            "user_id": f"b{n}",
            "email": f"b{n}@example.com",
            "first_name": f"B{n}",
            "traits": {"badge_name": f"B-{n}"},
            "lifecycle_stage": "lead",
            "subscription_status": "subscribed",
            "consent": {},
            "created_at": now,
            "updated_at": now,
        }
        for n in range(1000)
    ]
    with ctx.db.write() as conn:  # set-based, as connectors.backfill queues a segment's members
        conn.execute(contact_rows.insert(), rows)
        queued = [outbox.row(connector_id, outbox.CONTACT, r["id"], now, contact_id=r["id"]) for r in rows]
        outbox.enqueue_many(conn, ctx, queued)
    for _ in range(60):
        worker.run_once()
        if not _rows(ctx, connector_outbox):
            break
        clock.advance(timedelta(seconds=1))
    assert peer.count() == 1000
    assert all(call.status != 429 for call in peer.calls)
    assert len(peer.calls_to("POST", r"/api/3/import/bulk_import")) == 5  # 100 (cut), then 250s; none twice
    assert len(_rows(ctx, connector_links)) == 1000  # every id read back
    assert peer.field_values("b999@example.com")["Badge Name"] == "B-999"


def test_connection_answers_ok_and_a_wrong_key_is_refused_without_showing_it(
    ctx: AppContext, peer: ActiveCampaignPeer
) -> None:
    assert connectors.test_connection(ctx, connect(ctx, peer))["ok"] is True
    wrong = connect(ctx, peer, credentials={"api_token": "wrong-secret"})
    with pytest.raises(Upstream) as refused:
        connectors.test_connection(ctx, wrong)
    assert refused.value.code == "vendor_refused"
    assert "403" in refused.value.message
    assert "wrong-secret" not in refused.value.message
