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

SEPARATOR = "\t"
"""Between the parts of :data:`SEARCH_TEXT`; a search text holding it is matched part by part instead."""

SEARCH_TEXT = (
    f"lower(coalesce(email, '') || '{SEPARATOR}' || coalesce(user_id, '') || '{SEPARATOR}'"
    " || coalesce(first_name, '') || ' ' || coalesce(last_name, ''))"
)
"""The contact search's haystack, lower case: the email, the user id and "first last", apart.

A text without :data:`SEPARATOR` is found in it exactly when it is part of the email, the user id, the
first or the last name or "first last" (a text without a space cannot span the two names): one
``LIKE`` on one stored column and one trigram index, where the same search over the four columns and
the joined name costs PostgreSQL five times as much a contact."""

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
    # What the contact search (``q``) reads: stored on PostgreSQL, computed on read on SQLite (migration
    # 0029). See SEARCH_TEXT.
    sa.Column("search_text", sa.Text, sa.Computed(SEARCH_TEXT, persisted=True)),
    sa.Index("ix_contacts_updated_at", "updated_at"),
    sa.Index("ix_contacts_lifecycle_stage", "lifecycle_stage"),
    sa.Index("ix_contacts_company_id", "company_id"),
    # The CRM's lead search (part of a name or an email, ILIKE '%…%'): a pg_trgm GIN index on PostgreSQL
    # (migration 0016). SQLite keeps scanning: its copy of the index is empty (WHERE 0), declared only so
    # that both databases have the same indexes.
    sa.Index(
        "ix_contacts_search_trgm",
        "email",
        "first_name",
        "last_name",
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops", "first_name": "gin_trgm_ops", "last_name": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    ),
    # The contact search (migration 0029): one trigram index on the one column it reads.
    sa.Index(
        "ix_contacts_search_text_trgm",
        "search_text",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    ),
)

# A database made from these models rather than the migrations (the simulator's scratch database) needs
# the extension of ix_contacts_search_trgm first, as migration 0016 creates it.
sa.event.listen(
    contacts,
    "before_create",
    sa.DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
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
    # What the touch was (``contacts/touchpoints.py``): ``page`` (a page view with UTM or an external
    # referrer), ``track`` (a tracked event carrying its source) or ``click`` (a person's email click;
    # ``journey`` is then the journey the email came from).
    sa.Column("kind", sa.String(16), nullable=False, server_default="page"),
    sa.Column("journey", sa.String(255)),
    sa.Index("ix_touchpoints_contact_id_occurred_at", "contact_id", "occurred_at"),
)

# How many contacts there are, kept exact by every unit of work that creates or deletes contacts (in its
# transaction, under the profile lock that already serialises them: no new contention), so the console's
# "Contacts now" reads one row instead of counting a million (one row, ``id`` 1; none yet means 0).
contact_totals = sa.Table(
    "contact_totals",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("contacts", sa.BigInteger, nullable=False),
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

# CSV imports sent through the API, worked through by the worker in chunks. ``source`` holds the file
# only until the job ends; rejected rows and warnings stay in ``import_issues`` until the job is deleted.
import_jobs = sa.Table(
    "import_jobs",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),  # queued | running | done | failed
    sa.Column("filename", sa.String(255)),
    sa.Column("mapping", json_type(), nullable=False),  # CSV header -> field
    sa.Column("list_id", sa.String(ID_LENGTH)),  # a static list the contacts are added to
    sa.Column("source", sa.Text),  # the CSV text, cleared when the job ends
    sa.Column("total", sa.Integer, nullable=False, server_default="0"),
    sa.Column("processed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("merged", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rejected", sa.Integer, nullable=False, server_default="0"),
    sa.Column("error", sa.Text),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("lease_until", UTCDateTime()),
    sa.Index("ix_import_jobs_status", "status"),
)

# A job's rejected rows (with the row as sent) and warnings (duplicate emails merged).
import_issues = sa.Table(
    "import_issues",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column(
        "job_id", sa.String(ID_LENGTH), sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("kind", sa.String(8), nullable=False),  # rejected | warning
    sa.Column("line", sa.Integer, nullable=False),
    sa.Column("lines", json_type()),  # every line a warning is about
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("email", sa.String(320)),  # who the row is about, for erasure
    sa.Column("user_id", sa.String(255)),
    sa.Column("row_values", json_type()),
    sa.Index("ix_import_issues_job_id_kind_line", "job_id", "kind", "line"),
    sa.Index("ix_import_issues_email", "email"),
    sa.Index("ix_import_issues_user_id", "user_id"),
)
