"""The profile an email's Liquid sees — ``contact`` (with ``score`` and ``score_band``) and ``company``
— loaded for a batch of contacts in three queries; shared by the composer (:mod:`.compose`) and a
journey webhook's data (:mod:`.liquid_data`), so both see the same variables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.scoring import service as scoring

__all__ = [
    "COMPANY_COLUMNS",
    "CONTACT_COLUMNS",
    "Profiles",
    "company",
    "load",
    "person",
]

# Only what composing reads (no consent, timestamps...: each column costs a conversion per row).
CONTACT_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "timezone",
    "lifecycle_stage",
    "owner_id",
    "traits",
    "company_id",
    "subscription_status",
)
COMPANY_COLUMNS = ("id", "name", "domain", "industry", "size", "traits")


@dataclass(frozen=True)
class Profiles:
    """Rows by id: each contact found, the companies they belong to, and their scores (by contact id)."""

    contacts: dict[str, Any]
    companies: dict[str, Any]
    scores: dict[str, Any]

    def variables(self, contact_id: str) -> dict[str, Any]:
        """``contact`` and ``company`` of one contact (both None when it was not found)."""
        contact = self.contacts.get(contact_id)
        firm = self.companies.get(contact.company_id) if contact is not None and contact.company_id else None
        return {"contact": person(contact, self.scores.get(contact_id)), "company": company(firm)}


def load(conn: Connection, contact_ids: Sequence[str]) -> Profiles:
    """The contacts of ``contact_ids`` that exist, their companies and scores: three queries."""
    ids = sorted(set(contact_ids))
    found = {r.id: r for r in contacts.rows_of(conn, CONTACT_COLUMNS, ids)}
    company_ids = sorted({r.company_id for r in found.values() if r.company_id})
    firms = {r.id: r for r in contacts.company_rows_of(conn, COMPANY_COLUMNS, company_ids)}
    scores = {r.contact_id: r for r in scoring.scores_of(conn, ids)}
    return Profiles(found, firms, scores)


def person(contact: Any, score: Any) -> dict[str, Any] | None:
    """``contact`` as Liquid sees it (a contact without a score has ``score`` 0, no ``score_band``)."""
    if contact is None:
        return None
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "phone": contact.phone,
        "timezone": contact.timezone,
        "lifecycle_stage": contact.lifecycle_stage,
        "owner_id": contact.owner_id,
        "traits": contact.traits or {},
        "score": score.total if score is not None else 0,
        "score_band": score.band if score is not None else None,
    }


def company(row: Any) -> dict[str, Any] | None:
    """``company`` as Liquid sees it."""
    if row is None:
        return None
    return {
        "name": row.name,
        "domain": row.domain,
        "industry": row.industry,
        "size": row.size,
        "traits": row.traits or {},
    }
