"""Tables owned by the contacts domain. Other domains use :mod:`leadflow.contacts.service`."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, bigint_pk, json_type

companies = sa.Table(
    "companies",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("group_id", sa.String(255), nullable=False, unique=True),
    sa.Column("name", sa.String(255)),
    sa.Column("domain", sa.String(255)),
    sa.Column("industry", sa.String(255)),
    sa.Column("size", sa.Integer),
    sa.Column("traits", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("user_id", sa.String(255), unique=True),
    sa.Column("email", sa.String(320), unique=True),
    sa.Column("phone", sa.String(32)),
    sa.Column("first_name", sa.String(255)),
    sa.Column("last_name", sa.String(255)),
    sa.Column("traits", json_type(), nullable=False),
    sa.Column("company_id", sa.String(ID_LENGTH), sa.ForeignKey("companies.id", ondelete="SET NULL")),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False),
    sa.Column("owner_id", sa.String(64)),
    sa.Column("timezone", sa.String(64)),
    sa.Column("subscription_status", sa.String(16), nullable=False),
    sa.Column("consent", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime()),
    sa.Column("sessions", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_contacts_updated_at", "updated_at"),
    sa.Index("ix_contacts_lifecycle_stage", "lifecycle_stage"),
    sa.Index("ix_contacts_company_id", "company_id"),
)

# Every user id and anonymous id ever seen for a contact ("user" / "anon" kinds).
contact_identities = sa.Table(
    "contact_identities",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("value", sa.String(255), primary_key=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_contact_identities_contact_id", "contact_id"),
)

# Tags, stored trimmed and lower-cased.
contact_tags = sa.Table(
    "contact_tags",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), primary_key=True),
    sa.Column("tag", sa.String(100), primary_key=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_contact_tags_tag", "tag"),
)

# A merged contact's id keeps resolving to the survivor.
contact_merges = sa.Table(
    "contact_merges",
    metadata,
    sa.Column("merged_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("survivor_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("merged_at", UTCDateTime(), nullable=False),
    sa.Index("ix_contact_merges_survivor_id", "survivor_id"),
)

touchpoints = sa.Table(
    "touchpoints",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(255)),
    sa.Column("medium", sa.String(255)),
    sa.Column("campaign", sa.String(255)),
    sa.Column("term", sa.String(255)),
    sa.Column("content", sa.String(255)),
    sa.Column("referrer", sa.Text),
    sa.Column("url", sa.Text),
    sa.Index("ix_touchpoints_contact_id_occurred_at", "contact_id", "occurred_at"),
)

# GDPR erasures: what was erased and when, never who.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("erased_at", UTCDateTime(), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("summary", json_type(), nullable=False),
)

# Keyed digests of an erased person's user and anonymous ids: late events for them are dropped.
erasure_suppressions = sa.Table(
    "erasure_suppressions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("erasure_id", sa.String(ID_LENGTH), sa.ForeignKey("erasures.id"), nullable=False),
)
