"""A unit of work over profiles: load by key, change in memory, write back set-based.

Every profile write — the event processor, the REST API, CSV import — runs in a transaction holding
the profile lock (see :func:`leadflow.contacts.writes.profile_lock`), so two units of work never race
over the same contact and the in-memory state is the truth until :meth:`ProfileBatch.flush`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import stages, store
from leadflow.contacts.changes import ProfileChanges
from leadflow.contacts.state import MERGEABLE_FIELDS, CompanyState, ContactState, FlushResult
from leadflow.events import service as events
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock
from leadflow.kernel.errors import Conflict
from leadflow.kernel.facts import ContactsMerged
from leadflow.kernel.ids import new_id

STAGE_CHANGED = "leadflow.stage_changed"
_SIMPLE_FIELDS = (
    "phone",
    "first_name",
    "last_name",
    "timezone",
    "owner_id",
    "company_id",
    "subscription_status",
)


class ProfileBatch:
    def __init__(self, conn: Connection, clock: Clock, bus: Bus) -> None:
        self.conn = conn
        self.bus = bus
        self.now = clock.now()
        self.contacts: dict[str, ContactState] = {}
        self.ids: dict[tuple[str, str], str | None] = {}
        self.emails: dict[str, str | None] = {}
        self.companies: dict[str, CompanyState | None] = {}
        self.merged: dict[str, str] = {}  # merged in this unit of work: loser -> survivor
        self.redirects: dict[str, str] = {}  # merged earlier, as recorded in contact_merges
        self.new_identities: dict[tuple[str, str], str] = {}
        self.touchpoints: list[dict[str, Any]] = []

    # ---- loading -------------------------------------------------------------------------------
    def preload(
        self,
        *,
        user_ids: Iterable[str] = (),
        anon_ids: Iterable[str] = (),
        emails: Iterable[str] = (),
        contact_ids: Iterable[str] = (),
        group_ids: Iterable[str] = (),
    ) -> None:
        """Load everything these keys point at, in a handful of queries."""
        for kind, values in (("user", user_ids), ("anon", anon_ids)):
            missing = {v for v in values if (kind, v) not in self.ids}
            found = store.identities(self.conn, kind, missing) if missing else {}
            for value in missing:
                self.ids[(kind, value)] = found.get(value)
        missing_emails = {e for e in emails if e not in self.emails}
        if missing_emails:
            for state in store.contacts_by_email(self.conn, missing_emails):
                self._adopt(state)
            for value in missing_emails:
                self.emails.setdefault(value, None)
        wanted = {c for c in contact_ids if c not in self.contacts and c not in self.redirects}
        if wanted:
            self.redirects.update(store.survivors(self.conn, wanted))
        needed = {self.resolve(c) for c in wanted} | {c for c in self.ids.values() if c}
        needed -= self.contacts.keys()
        if needed:
            for state in store.contacts_by_id(self.conn, needed):
                self._adopt(state)
        missing_groups = {g for g in group_ids if g not in self.companies}
        if missing_groups:
            loaded = {c.group_id: c for c in store.companies_by_group(self.conn, missing_groups)}
            for group_id in missing_groups:
                self.companies[group_id] = loaded.get(group_id)

    def _adopt(self, state: ContactState) -> None:
        if state.id in self.contacts:
            return
        self.contacts[state.id] = state
        if state.email:
            self.emails[state.email] = state.id
        if state.user_id:
            self.ids.setdefault(("user", state.user_id), state.id)

    # ---- lookups ---------------------------------------------------------------------------------
    def resolve(self, contact_id: str) -> str:
        """The id a contact lives under now, following merges."""
        seen = 0
        while seen < 64:
            nxt = self.merged.get(contact_id) or self.redirects.get(contact_id)
            if nxt is None:
                return contact_id
            contact_id, seen = nxt, seen + 1
        raise RuntimeError("merge cycle")  # pragma: no cover - merges always point at a live contact

    def contact(self, contact_id: str) -> ContactState | None:
        if (
            contact_id not in self.contacts
            and contact_id not in self.merged
            and contact_id not in self.redirects
        ):
            self.preload(contact_ids=[contact_id])
        return self.contacts.get(self.resolve(contact_id))

    def find(self, kind: str, value: str | None) -> ContactState | None:
        if not value:
            return None
        if (kind, value) not in self.ids:
            self.preload(**{"user_ids" if kind == "user" else "anon_ids": [value]})
        contact_id = self.ids[(kind, value)]
        return self.contacts[self.resolve(contact_id)] if contact_id else None

    def find_email(self, email: str | None) -> ContactState | None:
        if not email:
            return None
        if email not in self.emails:
            self.preload(emails=[email])
        contact_id = self.emails[email]
        return self.contacts[self.resolve(contact_id)] if contact_id else None

    def company(self, group_id: str) -> CompanyState:
        if group_id not in self.companies:
            self.preload(group_ids=[group_id])
        company = self.companies[group_id]
        if company is None:
            company = CompanyState(
                id=new_id(),
                group_id=group_id,
                name=None,
                domain=None,
                industry=None,
                size=None,
                traits={},
                created_at=self.now,
                updated_at=self.now,
                persisted=False,
                dirty=True,
            )
            self.companies[group_id] = company
        return company

    # ---- changes -------------------------------------------------------------------------------
    def create(self) -> ContactState:
        state = ContactState.new(new_id(), self.now)
        self.contacts[state.id] = state
        return state

    def link(self, contact: ContactState, kind: str, value: str, *, primary: bool = False) -> None:
        """Attach a user or anonymous id to ``contact``; a user id becomes its ``user_id`` if it has none."""
        if self.ids.get((kind, value)) is None:
            self.ids[(kind, value)] = contact.id
            self.new_identities[(kind, value)] = contact.id
        if kind == "user" and (contact.user_id is None or primary) and contact.user_id != value:
            contact.user_id = value
            self._changed(contact)

    def set_email(self, contact: ContactState, email: str | None, *, strict: bool) -> bool:
        """Give ``contact`` this email unless another contact holds it (then: ``Conflict`` if strict)."""
        if email == contact.email:
            return True
        owner = self.find_email(email) if email else None
        if owner is not None and owner.id != contact.id:
            if strict:
                raise Conflict(f"{email} already belongs to contact {owner.id}", code="email_taken")
            return False
        if contact.email:
            self.emails[contact.email] = None
        contact.email = email
        if email:
            self.emails[email] = contact.id
        return True

    def apply_changes(
        self, contact: ContactState, changes: ProfileChanges, *, manual: bool = False, strict: bool = False
    ) -> list[str]:
        """Apply one change set; returns warnings (e.g. an email held by someone else)."""
        before = contact.row()
        warnings: list[str] = []
        values = changes.set_fields()
        if "email" in values and not self.set_email(contact, values["email"], strict=strict):
            warnings.append(f"email {values['email']} belongs to another contact; not changed")
        for name in _SIMPLE_FIELDS:
            if name in values:
                setattr(contact, name, values[name])
        if "consent" in values:
            contact.consent = {**contact.consent, **(values["consent"] or {})}
        if changes.traits:
            traits = dict(contact.traits)
            for key, value in changes.traits.items():
                if value is None:
                    traits.pop(key, None)
                else:
                    traits[key] = value
            contact.traits = traits
        if "lifecycle_stage" in values:
            stage = stages.validate(values["lifecycle_stage"])
            contact.lifecycle_stage = stage if manual else stages.forward(contact.lifecycle_stage, stage)
        contact.lifecycle_stage = stages.floor_for(contact.lifecycle_stage, has_email=bool(contact.email))
        if contact.row() != before:
            self._changed(contact)
        return warnings

    def _changed(self, contact: ContactState) -> None:
        contact.updated_at = self.now
        contact.dirty = True

    def merge(self, loser: ContactState, survivor: ContactState) -> None:
        """Fold ``loser`` into ``survivor``; the survivor keeps its id and the loser's id resolves to it.

        Traits and fields merge most-recent-wins: where both have a value, the profile updated last
        wins. The stage is the later of the two, creation the earlier, last-seen the later; an
        unsubscribe on either side holds. The loser's user and anonymous ids all resolve to the survivor.
        """
        if loser.id == survivor.id:
            return
        newer, older = (loser, survivor) if loser.updated_at > survivor.updated_at else (survivor, loser)
        emails = {loser.email, survivor.email}
        for name in MERGEABLE_FIELDS:
            value = getattr(newer, name)
            setattr(survivor, name, value if value is not None else getattr(older, name))
        survivor.traits = {**older.traits, **newer.traits}
        survivor.consent = {**older.consent, **newer.consent}
        survivor.user_id = survivor.user_id or loser.user_id
        survivor.lifecycle_stage = stages.forward(survivor.lifecycle_stage, loser.lifecycle_stage)
        survivor.lifecycle_stage = stages.floor_for(survivor.lifecycle_stage, has_email=bool(survivor.email))
        survivor.created_at = min(survivor.created_at, loser.created_at)
        survivor.sessions += loser.sessions
        if loser.last_seen_at and (
            survivor.last_seen_at is None or loser.last_seen_at > survivor.last_seen_at
        ):
            survivor.last_seen_at = loser.last_seen_at
        if "unsubscribed" in (loser.subscription_status, survivor.subscription_status):
            survivor.subscription_status = "unsubscribed"
        for email in emails:
            if email and email != survivor.email:
                self.emails[email] = None
        if survivor.email:
            self.emails[survivor.email] = survivor.id
        loser.email = loser.user_id = None
        loser.merged_into = survivor.id
        survivor.absorbed = True
        self.merged[loser.id] = survivor.id
        self._changed(survivor)

    # ---- writing -------------------------------------------------------------------------------
    def flush(self) -> FlushResult:
        """Write every change in a fixed order that keeps unique indexes and foreign keys satisfied."""
        live = [s for s in self.contacts.values() if s.merged_into is None]
        gone = [s for s in self.contacts.values() if s.merged_into is not None and s.persisted]
        store.write_companies(self.conn, [c for c in self.companies.values() if c is not None])
        store.release_unique_values(self.conn, [*live, *gone])
        created = [s for s in live if not s.persisted]
        store.insert_contacts(self.conn, created)
        store.update_contacts(self.conn, [s for s in live if s.persisted and s.dirty])
        pairs = [(s.id, self.resolve(s.id)) for s in gone]
        if pairs:
            store.move_references(self.conn, pairs)
            self.bus.publish(self.conn, ContactsMerged(tuple(pairs), self.now))
            store.record_merges(self.conn, pairs, self.now)
            store.delete_contacts(self.conn, [loser for loser, _ in pairs])
        store.insert_identities(
            self.conn,
            [
                {"kind": kind, "value": value, "contact_id": self.resolve(cid), "created_at": self.now}
                for (kind, value), cid in self.new_identities.items()
            ],
        )
        for touchpoint in self.touchpoints:
            touchpoint["contact_id"] = self.resolve(touchpoint["contact_id"])
        store.insert_touchpoints(self.conn, self.touchpoints)
        self._announce_stages(live)
        changes = {s.id: s.changed_fields() for s in live if s.dirty}
        result = FlushResult(
            created=[s.id for s in created], changes={k: v for k, v in changes.items() if v}, merged=pairs
        )
        self._settle(live)
        return result

    def _announce_stages(self, live: list[ContactState]) -> None:
        """Every stage change (automatic or manual) is a ``leadflow.stage_changed`` event in the pipeline."""
        items = []
        for state in live:
            before = state.original["lifecycle_stage"] if state.original else "visitor"
            if state.lifecycle_stage != before:
                properties = {"from": before, "to": state.lifecycle_stage}
                items.append((state.id, STAGE_CHANGED, properties, f"stage:{new_id()}"))
        events.emit_many(self.conn, items, self.now)

    def _settle(self, live: list[ContactState]) -> None:
        """After a flush the database holds this state: later changes start from it."""
        for state in live:
            state.persisted, state.dirty, state.absorbed = True, False, False
            state.original_email, state.original_user_id = state.email, state.user_id
            state.original = state.row()
        for contact_id in [s.id for s in self.contacts.values() if s.merged_into is not None]:
            del self.contacts[contact_id]
        for company in self.companies.values():
            if company is not None:
                company.persisted, company.dirty = True, False
        self.new_identities.clear()
        self.touchpoints.clear()
