"""Processing: events become profiles, with identity resolution and merges."""

from __future__ import annotations

from datetime import timedelta

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support.contacts import (
    all_companies,
    all_contacts,
    all_touchpoints,
    by_user,
    events_of,
    only_contact,
)
from tests.support.events import send, stored


def test_identify_creates_a_profile_from_reserved_and_custom_traits(
    ctx: AppContext, processor: EventProcessor
) -> None:
    traits = {
        "email": " Ann@Example.COM ",
        "firstName": "Ann",
        "lastName": "Lee",
        "phone": "+1 415 555 0132",
        "plan": "pro",
        "timezone": "Europe/Berlin",
    }
    send(ctx, {"type": "identify", "userId": "u1", "traits": traits})
    processor.drain()
    contact = only_contact(ctx)
    assert (contact["email"], contact["first_name"], contact["last_name"]) == (
        "ann@example.com",
        "Ann",
        "Lee",
    )
    assert contact["phone"] == "+14155550132"
    assert contact["timezone"] == "Europe/Berlin"
    assert contact["traits"] == {"plan": "pro"}
    assert contact["user_id"] == "u1"
    assert contact["lifecycle_stage"] == "lead"  # a known email makes a lead


def test_null_trait_removes_it(ctx: AppContext, processor: EventProcessor) -> None:
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"plan": "pro", "seats": 3}})
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"plan": None, "seats": 4}})
    processor.drain()
    assert only_contact(ctx)["traits"] == {"seats": 4}


def test_anonymous_history_joins_the_identified_contact(ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {"type": "page", "anonymousId": "anon-1", "name": "Home"},
        {"type": "track", "anonymousId": "anon-1", "event": "Course Previewed"},
    )
    processor.drain()
    anonymous = only_contact(ctx)
    assert anonymous["lifecycle_stage"] == "visitor"
    send(
        ctx,
        {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "traits": {"email": "ann@example.com"}},
    )
    send(ctx, {"type": "track", "userId": "u1", "event": "Order Completed"})
    processor.drain()
    contact = only_contact(ctx)
    assert contact["id"] == anonymous["id"]  # the anonymous profile became the known one
    assert events_of(ctx, contact["id"]) == ["Home", "Course Previewed", "identify", "Order Completed"]
    send(ctx, {"type": "track", "anonymousId": "anon-1", "event": "Later Visit"})
    processor.drain()
    assert events_of(ctx, contact["id"])[-1] == "Later Visit"


def test_anonymous_profile_merges_into_an_existing_known_contact(
    ctx: AppContext, processor: EventProcessor
) -> None:
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "ann@example.com", "plan": "free"}})
    processor.drain()
    known = only_contact(ctx)
    send(ctx, {"type": "track", "anonymousId": "phone-anon", "event": "App Opened"})
    processor.drain()
    assert len(all_contacts(ctx)) == 2
    send(ctx, {"type": "identify", "userId": "u1", "anonymousId": "phone-anon"})
    processor.drain()
    survivor = only_contact(ctx)
    assert survivor["id"] == known["id"]  # the known contact keeps its id
    assert sorted(events_of(ctx, survivor["id"])) == ["App Opened", "identify", "identify"]


def test_alias_merges_two_known_contacts_most_recent_traits_win(
    ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    send(
        ctx,
        {
            "type": "identify",
            "userId": "old-id",
            "traits": {"plan": "free", "city": "Oslo", "email": "a@x.io"},
        },
    )
    processor.drain()
    old = by_user(ctx, "old-id")
    clock.advance(timedelta(hours=1))
    send(ctx, {"type": "identify", "userId": "new-id", "traits": {"plan": "pro", "phone": "+4722334455"}})
    processor.drain()
    new = by_user(ctx, "new-id")
    clock.advance(timedelta(hours=1))
    send(ctx, {"type": "alias", "previousId": "old-id", "userId": "new-id"})
    processor.drain()
    survivor = only_contact(ctx)
    assert survivor["id"] == new["id"]
    assert survivor["traits"] == {
        "plan": "pro",
        "city": "Oslo",
    }  # the newer profile wins where both have a value
    assert (survivor["email"], survivor["phone"]) == ("a@x.io", "+4722334455")
    assert survivor["created_at"] == old["created_at"]
    assert by_user(ctx, "old-id")["id"] == new["id"]  # the old user id resolves to the survivor
    send(ctx, {"type": "track", "userId": "old-id", "event": "Still Me"})
    processor.drain()
    assert events_of(ctx, new["id"])[-1] == "Still Me"
    assert len(all_contacts(ctx)) == 1


def test_alias_of_an_unknown_previous_id_links_it(ctx: AppContext, processor: EventProcessor) -> None:
    send(ctx, {"type": "alias", "previousId": "legacy-42", "userId": "u1"})
    send(ctx, {"type": "track", "userId": "legacy-42", "event": "Old App Event"})
    send(ctx, {"type": "track", "anonymousId": "legacy-42", "event": "Old Web Event"})
    processor.drain()
    contact = only_contact(ctx)
    assert contact["user_id"] == "u1"
    assert events_of(ctx, contact["id"]) == ["alias", "Old App Event", "Old Web Event"]


def test_identify_with_a_known_email_links_instead_of_duplicating(
    ctx: AppContext, processor: EventProcessor
) -> None:
    send(ctx, {"type": "identify", "anonymousId": "form-visitor", "traits": {"email": "lead@example.com"}})
    processor.drain()
    lead = only_contact(ctx)
    assert lead["user_id"] is None
    send(ctx, {"type": "identify", "userId": "u7", "traits": {"email": "LEAD@example.com", "plan": "trial"}})
    processor.drain()
    contact = only_contact(ctx)
    assert contact["id"] == lead["id"]
    assert contact["user_id"] == "u7"
    assert contact["traits"] == {"plan": "trial"}


def test_email_of_a_contact_with_another_user_id_is_not_taken(
    ctx: AppContext, processor: EventProcessor
) -> None:
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "shared@example.com"}})
    send(ctx, {"type": "identify", "userId": "u2", "traits": {"email": "shared@example.com", "plan": "pro"}})
    processor.drain()
    first, second = by_user(ctx, "u1"), by_user(ctx, "u2")
    assert first["id"] != second["id"]
    assert first["email"] == "shared@example.com"
    assert second["email"] is None
    assert second["traits"] == {"plan": "pro"}


def test_shared_device_does_not_merge_two_people(ctx: AppContext, processor: EventProcessor) -> None:
    send(ctx, {"type": "identify", "userId": "alice", "anonymousId": "kiosk"})
    send(ctx, {"type": "identify", "userId": "bob", "anonymousId": "kiosk"})
    processor.drain()
    assert by_user(ctx, "alice")["id"] != by_user(ctx, "bob")["id"]
    assert len(all_contacts(ctx)) == 2


def test_merges_within_one_batch_resolve_every_event(ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {"type": "track", "anonymousId": "a1", "event": "E1"},
        {"type": "track", "anonymousId": "a2", "event": "E2"},
        {"type": "identify", "userId": "u1", "anonymousId": "a1"},
        {"type": "identify", "userId": "u1", "anonymousId": "a2"},
        {"type": "track", "anonymousId": "a2", "event": "E3"},
    )
    assert processor.drain() == 5
    contact = only_contact(ctx)
    assert sorted(events_of(ctx, contact["id"])) == ["E1", "E2", "E3", "identify", "identify"]
    assert all(row["contact_id"] == contact["id"] for row in stored(ctx))


def test_group_creates_the_company_and_links_the_contact(ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {
            "type": "group",
            "userId": "u1",
            "groupId": "acme",
            "traits": {"name": "Acme", "employees": 250, "industry": "Technology"},
        },
    )
    send(
        ctx,
        {
            "type": "group",
            "userId": "u2",
            "groupId": "acme",
            "traits": {"plan": "enterprise", "industry": None},
        },
    )
    processor.drain()
    [company] = all_companies(ctx)
    assert (company["name"], company["size"], company["industry"]) == ("Acme", 250, None)
    assert company["traits"] == {"name": "Acme", "employees": 250, "plan": "enterprise"}
    assert {c["company_id"] for c in all_contacts(ctx)} == {company["id"]}


def test_page_with_utm_records_a_touchpoint(ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {
            "type": "page",
            "anonymousId": "a1",
            "properties": {
                "url": "https://school.test/?utm_source=google&utm_medium=cpc",
                "referrer": "https://google.com/",
            },
            "context": {"campaign": {"name": "spring"}},
        },
        {"type": "page", "anonymousId": "a1", "properties": {"url": "https://school.test/courses"}},
        {
            "type": "page",
            "anonymousId": "a1",
            "properties": {"url": "https://school.test/", "referrer": "https://news.test/a"},
        },
    )
    processor.drain()
    first, referral = all_touchpoints(ctx)
    assert (first["source"], first["medium"], first["campaign"]) == ("google", "cpc", "spring")
    assert (referral["source"], referral["medium"]) == ("news.test", "referral")
    assert first["contact_id"] == only_contact(ctx)["id"]


def test_last_seen_is_the_latest_event_time(ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {"type": "track", "userId": "u1", "event": "A", "timestamp": "2026-03-01T12:00:00Z"},
        {"type": "track", "userId": "u1", "event": "B", "timestamp": "2026-02-01T12:00:00Z"},
    )
    processor.drain()
    assert only_contact(ctx)["last_seen_at"].isoformat() == "2026-03-01T12:00:00+00:00"


def test_stage_never_moves_backwards_automatically(ctx: AppContext, processor: EventProcessor) -> None:
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "c@example.com"}})
    processor.drain()
    from leadflow.contacts import service
    from leadflow.contacts.schemas import ContactPatch

    service.patch(ctx, only_contact(ctx)["id"], ContactPatch(lifecycle_stage="customer"), actor="test")
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "c2@example.com"}})
    processor.drain()
    assert only_contact(ctx)["lifecycle_stage"] == "customer"


def test_processed_events_are_marked_with_their_contact(ctx: AppContext, processor: EventProcessor) -> None:
    send(ctx, *({"type": "track", "userId": f"u{i % 3}", "event": "E"} for i in range(30)))
    assert processor.drain() == 30
    assert processor.drain() == 0
    rows = stored(ctx)
    assert all(r["processed_at"] is not None and r["contact_id"] for r in rows)
    assert len({r["contact_id"] for r in rows}) == 3
