"""In-memory profile state for one unit of work (a processor batch, an API call, an import chunk)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CONTACT_FIELDS = (
    "id",
    "user_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "traits",
    "company_id",
    "lifecycle_stage",
    "owner_id",
    "timezone",
    "subscription_status",
    "consent",
    "created_at",
    "updated_at",
    "last_seen_at",
    "sessions",
)
SESSION_GAP = timedelta(minutes=30)
MERGEABLE_FIELDS = ("email", "phone", "first_name", "last_name", "timezone", "company_id", "owner_id")


@dataclass(slots=True)
class ContactState:
    id: str
    user_id: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    traits: dict[str, Any]
    company_id: str | None
    lifecycle_stage: str
    owner_id: str | None
    timezone: str | None
    subscription_status: str
    consent: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    sessions: int = 0
    persisted: bool = True
    dirty: bool = False
    merged_into: str | None = None
    original_user_id: str | None = None
    original_email: str | None = None
    original: dict[str, Any] | None = None
    absorbed: bool = False

    @classmethod
    def from_row(cls, row: Any) -> ContactState:
        values = {name: getattr(row, name) for name in CONTACT_FIELDS}
        values["traits"] = dict(values["traits"] or {})
        values["consent"] = dict(values["consent"] or {})
        state = cls(**values, original_user_id=row.user_id, original_email=row.email)
        state.original = state.row()
        return state

    @classmethod
    def new(cls, contact_id: str, now: datetime) -> ContactState:
        return cls(
            id=contact_id,
            user_id=None,
            email=None,
            phone=None,
            first_name=None,
            last_name=None,
            traits={},
            company_id=None,
            lifecycle_stage="visitor",
            owner_id=None,
            timezone=None,
            subscription_status="subscribed",
            consent={},
            created_at=now,
            updated_at=now,
            last_seen_at=None,
            persisted=False,
            dirty=True,
        )

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONTACT_FIELDS}

    def changed_fields(self) -> frozenset[str]:
        """What differs from the loaded row: column names, ``traits.<key>`` and ``consent.<key>``;
        ``*`` for a new contact or one that absorbed a merge."""
        if self.original is None or self.absorbed:
            return frozenset({"*"})
        changed: set[str] = set()
        for name, value in self.row().items():
            before = self.original[name]
            if value == before:
                continue
            if name in ("traits", "consent"):
                keys = set(value) | set(before)
                changed.update(f"{name}.{k}" for k in keys if value.get(k) != before.get(k))
            else:
                changed.add(name)
        return frozenset(changed)

    def touch(self, moment: datetime, *, activity: bool = False) -> None:
        """Last seen: the latest event time, never moved back by a late-arriving old event.

        Activity (a page view, screen or track call) more than 30 minutes after the last one starts a
        new session; ``sessions`` counts them ("at least 5 website sessions").
        """
        if self.last_seen_at is None or moment > self.last_seen_at:
            if activity and (self.last_seen_at is None or moment - self.last_seen_at > SESSION_GAP):
                self.sessions += 1
            self.last_seen_at = moment
            self.dirty = True


@dataclass(slots=True)
class CompanyState:
    id: str
    group_id: str
    name: str | None
    domain: str | None
    industry: str | None
    size: int | None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    persisted: bool = True
    dirty: bool = False

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group_id": self.group_id,
            "name": self.name,
            "domain": self.domain,
            "industry": self.industry,
            "size": self.size,
            "traits": self.traits,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class FlushResult:
    """What a unit of work changed, for the qualifiers downstream."""

    created: list[str] = field(default_factory=list)
    changes: dict[str, frozenset[str]] = field(default_factory=dict)
    merged: list[tuple[str, str]] = field(default_factory=list)
