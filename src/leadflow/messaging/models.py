"""Tables owned by the messaging domain. Other domains use :mod:`leadflow.messaging.service`.

``messages`` is the email outbox and the send log at once: a row is written (``queued``) in the same
transaction as the journey step or broadcast that wants it, under a unique idempotency ``key``, and a
deliverer moves it to ``sent`` / ``bounced`` / ``failed`` / ``suppressed``. Like the event log it carries
no foreign keys to contacts.
"""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

email_layouts = sa.Table(
    "email_layouts",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

email_templates = sa.Table(
    "email_templates",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(100), nullable=False, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # marketing | transactional
    sa.Column("topic", sa.String(64)),  # the preference-centre topic a marketing email belongs to
    sa.Column("layout", sa.String(100)),  # an email_layouts key
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),  # Liquid HTML (compiled from ``mjml`` when that is given)
    sa.Column("text", sa.Text),  # Liquid text; derived from the HTML when absent
    sa.Column("mjml", sa.Text),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

messages = sa.Table(
    "messages",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),  # idempotency: one message per key
    sa.Column("kind", sa.String(16), nullable=False),  # marketing | transactional | internal
    sa.Column("contact_id", sa.String(ID_LENGTH)),  # the person the message is for (or about)
    sa.Column("to_address", sa.String(320)),  # fixed recipient (internal notices); else the contact's
    sa.Column("template_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("topic", sa.String(64)),
    sa.Column("journey_id", sa.String(ID_LENGTH)),
    sa.Column("run_id", sa.String(ID_LENGTH)),
    sa.Column("step_id", sa.String(64)),
    sa.Column("broadcast_id", sa.String(ID_LENGTH)),
    # queued | deferred | sent | bounced | failed | suppressed
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("context", json_type()),  # event properties and journey variables for the template
    sa.Column("recipient", sa.String(320)),  # the address it went to
    sa.Column("subject", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("response", sa.Text),  # the SMTP server's last answer
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime()),
    sa.Column("opened_at", UTCDateTime()),  # first human open
    sa.Column("clicked_at", UTCDateTime()),  # first human click
    sa.Column("bounced_at", UTCDateTime()),
    sa.Column("complained_at", UTCDateTime()),
    sa.Column("unsubscribed_at", UTCDateTime()),
    sa.Column("opens", sa.Integer, nullable=False, server_default="0"),
    sa.Column("clicks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("machine_hits", sa.Integer, nullable=False, server_default="0"),
    sa.Index(
        "ix_messages_due",
        "due_at",
        postgresql_where=sa.text("status IN ('queued', 'deferred')"),
        sqlite_where=sa.text("status IN ('queued', 'deferred')"),
    ),
    sa.Index("ix_messages_contact_id_created_at", "contact_id", "created_at"),
    sa.Index("ix_messages_journey_id", "journey_id"),
    sa.Index("ix_messages_broadcast_id_status", "broadcast_id", "status"),
    # who opened / clicked a template's messages (the console's email report), only the engaged rows
    sa.Index(
        "ix_messages_template_id_opened_at",
        "template_id",
        "opened_at",
        postgresql_where=sa.text("opened_at IS NOT NULL"),
        sqlite_where=sa.text("opened_at IS NOT NULL"),
    ),
    sa.Index(
        "ix_messages_template_id_clicked_at",
        "template_id",
        "clicked_at",
        postgresql_where=sa.text("clicked_at IS NOT NULL"),
        sqlite_where=sa.text("clicked_at IS NOT NULL"),
    ),
)

# Addresses that must not receive mail: unsubscribed (marketing only), hard bounce, complaint, manual.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("email", sa.String(320), primary_key=True),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("message_id", sa.String(ID_LENGTH)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

email_topics = sa.Table(
    "email_topics",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("default_subscribed", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)

email_preferences = sa.Table(
    "email_preferences",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("topic", sa.String(64), primary_key=True),
    sa.Column("subscribed", sa.Boolean, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

broadcasts = sa.Table(
    "broadcasts",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("segment_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("template_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("topic", sa.String(64)),
    # draft | scheduled | sending | sent | cancelled
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("send_at", UTCDateTime()),
    sa.Column("per_minute", sa.Integer),  # throttle
    sa.Column("recipients", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("started_at", UTCDateTime()),
    sa.Column("finished_at", UTCDateTime()),
)
