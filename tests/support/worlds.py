"""Hypothesis strategies for random contacts, events and rule trees, and loading them into a database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from hypothesis import strategies as st

from leadflow.contacts import stages
from leadflow.contacts.models import companies, contact_tags, contacts
from leadflow.events.models import events
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.scoring.models import contact_scores
from leadflow.segments import rules
from leadflow.segments.models import segment_members, segments
from tests.support.reference import World

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEGMENT = "seg-a"
TEXTS = [
    "pro",
    "Pro",
    "PRO",
    "free",
    "trial",
    "",
    "é",
    "É",
    "pro plan",
    "5",
    "berlin",
    "Berlin",
    "true",
    "5.0",
    '["pro"]',
    "{",
    "[1]",
    "null",
]
DATES = [
    "2026-03-01",
    "2026-02-28T10:00:00Z",
    "1990-03-02",
    "2026-02-30",
    "not a date",
    "1992-02-29",
    "2026-03-02T08:30:00+01:00",
    "2025-12-24 18:00",
    "2026-03-02",
]
ZONES = [None, "UTC", "Europe/Berlin", "Pacific/Kiritimati", "America/Los_Angeles", "Asia/Tokyo"]
EVENT_NAMES = ["Course Previewed", "Order Completed", "leadflow.email_opened", "leadflow.email_clicked"]
DURATIONS = ["1h", "12h", "7d", "30d", "2w"]

scalars = st.one_of(
    st.lists(st.sampled_from(["pro", "5", "true"]), max_size=2),
    st.fixed_dictionaries({"a": st.sampled_from(["pro", "Pro"])}),
    st.none(),
    st.booleans(),
    st.integers(-5, 20),
    st.floats(-5, 20, allow_nan=False, allow_infinity=False),
    st.sampled_from(TEXTS),
    st.sampled_from(DATES),
)
traits = st.dictionaries(
    st.sampled_from(["plan", "seats", "vip", "birthday", "city"]), scalars, max_size=4
).flatmap(lambda d: st.one_of(st.just(d), st.just({**d, "address": {"city": "Berlin"}})))


@st.composite
def worlds(draw: st.DrawFn) -> World:
    people: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 10))):
        created = NOW - timedelta(hours=draw(st.integers(0, 24 * 400)))
        people.append(
            {
                "id": f"c{n:02d}",
                "user_id": None,
                "email": draw(st.sampled_from([None, f"p{n}@Example.com", f"x{n}@y.io"])),
                "phone": None,
                "first_name": draw(st.sampled_from([None, "Ann", "ann", "Bob", "Ånn"])),
                "last_name": None,
                "traits": draw(traits),
                "company_id": draw(st.sampled_from([None, "co1", "co2"])),
                "lifecycle_stage": draw(st.sampled_from(stages.STAGES)),
                "owner_id": None,
                "timezone": draw(st.sampled_from(ZONES)),
                "subscription_status": draw(st.sampled_from(["subscribed", "unsubscribed"])),
                "consent": draw(
                    st.sampled_from([{}, {"email": {"granted": True}}, {"email": {"granted": False}}])
                ),
                "created_at": created,
                "updated_at": created,
                "last_seen_at": draw(
                    st.one_of(st.none(), st.just(NOW - timedelta(hours=draw(st.integers(0, 2400)))))
                ),
                "sessions": draw(st.integers(0, 9)),
            }
        )
    world = World(now=NOW, contacts=people)
    world.companies = {
        cid: {
            "id": cid,
            "group_id": cid,
            "name": draw(st.sampled_from(["Acme", "acme corp", "Globex"])),
            "domain": None,
            "industry": draw(st.sampled_from([None, "Technology", "finance"])),
            "size": draw(st.one_of(st.none(), st.integers(1, 500))),
            "traits": draw(traits),
            "created_at": NOW,
            "updated_at": NOW,
        }
        for cid in ("co1", "co2")
    }
    for person in people:
        if draw(st.booleans()):
            world.scores[person["id"]] = {
                "total": draw(st.integers(-10, 120)),
                "behavioral": draw(st.integers(0, 60)),
                "demographic": 0,
                "firmographic": 0,
                "engagement": draw(st.integers(0, 80)),
                "band": draw(st.sampled_from(["cold", "warm", "hot"])),
            }
        world.tags[person["id"]] = set(draw(st.lists(st.sampled_from(["vip", "alumni", "beta"]), max_size=2)))
    world.members[SEGMENT] = {p["id"] for p in people if draw(st.booleans())}
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["track", "track", "page"]))
        world.events.append(
            {
                "contact_id": draw(st.sampled_from([p["id"] for p in people])),
                "type": kind,
                "event": draw(st.sampled_from(EVENT_NAMES)) if kind == "track" else None,
                "name": draw(st.sampled_from(["Pricing", "Home"])) if kind == "page" else None,
                "timestamp": NOW - timedelta(hours=draw(st.integers(-5, 24 * 60))),
                "properties": draw(
                    st.dictionaries(
                        st.sampled_from(["course", "amount", "journey_id", "machine_generated"]),
                        st.one_of(scalars, st.sampled_from(["ai-101", "AI-201", "j1", "J1"])),
                        max_size=3,
                    )
                ),
            }
        )
    return world


FIELDS_BY_KIND = {
    "text": [
        "email",
        "first_name",
        "timezone",
        "subscription_status",
        "company.industry",
        "company.name",
        "score_band",
    ],
    "number": ["sessions", "company.size", "score", "score.engagement"],
    "datetime": ["created_at", "last_seen_at"],
    "stage": ["lifecycle_stage"],
    "json": [
        "traits.plan",
        "traits.seats",
        "traits.vip",
        "traits.birthday",
        "traits.address.city",
        "consent.email.granted",
        "company.traits.plan",
    ],
    "tags": ["tags"],
}
texts = st.sampled_from([*TEXTS[:-1], "ann", "@example.com", "acme", "Europe", "un", "hot", "x@"])
numbers = st.one_of(st.integers(-5, 400), st.floats(-5, 20, allow_nan=False, allow_infinity=False))


def _op_value(kind: str) -> st.SearchStrategy[tuple[str, Any]]:
    presence = st.tuples(st.sampled_from(["is_set", "is_not_set"]), st.none())
    textual = st.one_of(
        st.tuples(
            st.sampled_from(["eq", "neq", "contains", "not_contains", "starts_with", "ends_with"]), texts
        ),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(texts, min_size=1, max_size=3)),
    )
    numeric = st.one_of(
        st.tuples(st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]), numbers),
        st.tuples(st.just("between"), st.tuples(numbers, numbers).map(lambda p: sorted(p))),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(numbers, min_size=1, max_size=3)),
    )
    dated = st.one_of(
        st.tuples(
            st.sampled_from(["before", "after"]), st.sampled_from([*DATES[:3], "2026-03-02T08:00:00Z"])
        ),
        st.tuples(st.sampled_from(["within_last", "more_than_ago"]), st.sampled_from(DURATIONS)),
        st.tuples(st.just("anniversary_today"), st.none()),
    )
    booleans = st.tuples(st.sampled_from(["eq", "neq"]), st.booleans())
    return {
        "text": st.one_of(presence, textual),
        "number": st.one_of(presence, numeric),
        "datetime": st.one_of(presence, dated),
        "stage": st.tuples(
            st.sampled_from(["eq", "neq", "gt", "gte", "lt", "lte"]), st.sampled_from(stages.STAGES)
        ),
        "json": st.one_of(presence, textual, numeric, dated, booleans),
        "tags": st.one_of(
            presence,
            st.tuples(st.sampled_from(["contains", "not_contains"]), st.sampled_from(["vip", "VIP", "beta"])),
        ),
    }[kind]


@st.composite
def attribute(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(FIELDS_BY_KIND)))
    op, value = draw(_op_value(kind))
    node: dict[str, Any] = {"field": draw(st.sampled_from(FIELDS_BY_KIND[kind])), "op": op}
    if value is not None:
        node["value"] = value
    return node


def _count() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "gt", "gte", "lte"]), st.integers(0, 3)).map(lambda p: {p[0]: p[1]}),
        st.integers(1, 3).map(lambda n: {"lt": n}),
        st.tuples(st.integers(0, 2), st.integers(0, 3)).map(lambda p: {"between": sorted(p)}),
    )


@st.composite
def behaviour(draw: st.DrawFn) -> dict[str, Any]:
    node: dict[str, Any] = (
        {"event": draw(st.sampled_from(EVENT_NAMES))}
        if draw(st.booleans())
        else {"page": draw(st.sampled_from(["Pricing", "Home", "*"]))}
    )
    if draw(st.booleans()):
        node["count"] = draw(_count())
    if draw(st.booleans()):
        node["within"] = draw(st.sampled_from(DURATIONS))
    if draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from(["eq", "gt", "gte", "lt", "lte"]))
        node["total"] = {"property": "amount", op: draw(st.sampled_from([0, 1, 5, 12.5, -3]))}
    if draw(st.booleans()):
        kind = draw(st.sampled_from(["text", "number", "json"]))
        op, value = draw(_op_value(kind))
        prop = {
            "field": draw(st.sampled_from(["course", "amount", "properties.course", "journey_id"])),
            "op": op,
        }
        if value is not None:
            prop["value"] = value
        node["where"] = [prop]
    for key in ("first", "last"):
        if draw(st.integers(0, 4)) == 0:
            node[key] = {"op": "within_last", "value": draw(st.sampled_from(DURATIONS))}
    return node


engagement = st.builds(
    lambda kind, journey, within, machine: {
        "email": kind,
        **({"journey": journey} if journey else {}),
        **({"within": within} if within else {}),
        **({"include_machine_generated": True} if machine else {}),
    },
    st.sampled_from(["opened", "clicked", "received"]),
    st.sampled_from([None, "j1"]),
    st.sampled_from([None, "7d"]),
    st.booleans(),
)
membership = st.booleans().map(lambda member: {"segment": SEGMENT, "member": member})


def _parses(data: dict[str, Any]) -> bool:
    try:
        rules.parse(data)
    except Invalid:
        return False
    return True


leaves = st.one_of(attribute(), attribute(), behaviour(), engagement, membership).filter(_parses)
rule_trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"all": items}),
        st.lists(children, min_size=1, max_size=3).map(lambda items: {"any": items}),
        children.map(lambda child: {"not": child}),
    ),
    max_leaves=5,
)


def load(ctx: AppContext, world: World) -> None:
    """Replace the database's contents with ``world``."""
    with ctx.db.write() as conn:
        for table in (events, segment_members, segments, contact_tags, contact_scores, contacts, companies):
            conn.execute(table.delete())
        conn.execute(companies.insert(), list(world.companies.values()))
        conn.execute(contacts.insert(), world.contacts)
        scores = [{"contact_id": cid, **score, "updated_at": NOW} for cid, score in world.scores.items()]
        if scores:
            conn.execute(contact_scores.insert(), scores)
        tags = [
            {"contact_id": cid, "tag": tag, "created_at": NOW}
            for cid, found in world.tags.items()
            for tag in found
        ]
        if tags:
            conn.execute(contact_tags.insert(), tags)
        conn.execute(
            segments.insert(),
            {
                "id": SEGMENT,
                "name": "A",
                "kind": "static",
                "dependencies": {},
                "time_relative": False,
                "refresh_interval_seconds": 300,
                "member_count": 0,
                "created_at": NOW,
                "updated_at": NOW,
            },
        )
        members = [
            {"segment_id": SEGMENT, "contact_id": cid, "entered_at": NOW} for cid in world.members[SEGMENT]
        ]
        if members:
            conn.execute(segment_members.insert(), members)
        rows = [
            {
                **e,
                "message_id": str(uuid.uuid4()),
                "received_at": NOW,
                "processed_at": NOW,
                "source": "segment",
            }
            for e in world.events
        ]
        if rows:
            conn.execute(events.insert(), rows)


def ids(ctx: AppContext, query: sa.Select[Any]) -> set[str]:
    with ctx.db.read() as conn:
        return {row[0] for row in conn.execute(query)}
