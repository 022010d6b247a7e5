"""The capture domain's tables: form definitions and their submissions (each one a consent record)."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

forms = sa.Table(
    "forms",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    # fields, consent, double opt-in, redirect / thank-you, actions, allowed origins (capture.schemas)
    sa.Column("definition", json_type(), nullable=False),
    # honeypot hits: answered as a success, nothing stored but this count
    sa.Column("spam_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

form_submissions = sa.Table(
    "form_submissions",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("form_id", sa.String(ID_LENGTH), nullable=False, index=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), index=True),
    sa.Column("email", sa.String(320)),
    sa.Column("data", json_type()),  # the submitted fields
    sa.Column("utm", json_type()),
    sa.Column("page_url", sa.Text()),
    sa.Column("referrer", sa.Text()),
    sa.Column("ip", sa.String(64)),
    # the consent record: the text the person agreed to, when, from where (ip)
    sa.Column("consent_text", sa.Text()),
    sa.Column("consented_at", UTCDateTime()),
    sa.Column("status", sa.String(12), nullable=False),  # single | pending | confirmed
    sa.Column("confirmed_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)
