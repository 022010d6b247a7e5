"""Tables owned by the webhooks domain: the outgoing webhook outbox and incoming replay tokens."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

# Each row is one webhook to deliver, written in the transaction that decided to send it; the key makes
# a retried decision a no-op, and the row id is the Standard Webhooks ``webhook-id`` the receiver can
# de-duplicate on.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("key", sa.String(200), nullable=False, unique=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event", sa.String(100), nullable=False),  # the payload's ``type``
    sa.Column("payload", json_type(), nullable=False),
    # queued | delivered | failed
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("due_at", UTCDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("response_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("contact_id", sa.String(ID_LENGTH)),
    sa.Column("journey_id", sa.String(ID_LENGTH)),
    sa.Column("run_id", sa.String(ID_LENGTH)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("delivered_at", UTCDateTime()),
    # deliveries to a registered endpoint (``webhooks.endpoints``; NULL: a journey step's own URL)
    sa.Column("endpoint_id", sa.String(ID_LENGTH)),
    sa.Column("replay_of", sa.String(ID_LENGTH)),  # the delivery this one sends again
    # the delivery log: the last attempt's request headers, the answer's headers subset and body start
    sa.Column("request_headers", json_type()),
    sa.Column("response_headers", json_type()),
    sa.Column("response_body", sa.Text),
    sa.Column("duration_ms", sa.Integer),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "created_at"),
    # a person's deliveries, for the GDPR erasure and export (``webhooks.outbox``)
    sa.Index("ix_webhook_deliveries_contact_id", "contact_id"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "due_at",
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    ),
)

# Each row is a receiver registered by API (``webhooks.endpoints``): the pipeline's events of the types it
# subscribes to become deliveries to it. Its ``whsec_`` secret is not stored: it is derived from the
# installation's secret key and ``secret_salt`` (random); during a rotation the previous salt signs too,
# until ``previous_until``.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("event_types", json_type(), nullable=False),  # list of catalogue types, or ["*"]
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("rate_limit", sa.Float),  # deliveries per second; NULL: unlimited
    sa.Column("secret_salt", sa.String(64), nullable=False),
    sa.Column("previous_salt", sa.String(64)),
    sa.Column("previous_until", UTCDateTime()),
    sa.Column("disabled_reason", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Each row is one signature token an incoming provider webhook was applied with (Mailgun signs only its
# timestamp and token, not the body): a token seen again within the signature window with the same body
# digest is a harmless redelivery, with another body a replay. Rows past ``expires_at`` (the end of the
# window in which the signature would still verify) no longer protect anything and are pruned.
webhook_replay_tokens = sa.Table(
    "webhook_replay_tokens",
    metadata,
    sa.Column("source", sa.String(32), primary_key=True),  # the provider: "mailgun", ...
    sa.Column("token", sa.String(200), primary_key=True),
    sa.Column("body_digest", sa.String(64), nullable=False),  # SHA-256 hex of the request body
    sa.Column("seen_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Index("ix_webhook_replay_tokens_expires_at", "expires_at"),
)

# --- incoming webhooks at /hooks/{source} (webhooks.inbound) -------------------------------------------

# One row per sender configured by the operator: the ``{source}`` of ``/hooks/{source}``, how its
# deliveries are signed (``stripe`` | ``calendly`` | ``standard``), the signing secret (never returned by
# the API), the accepted clock distance in seconds, and whether it is accepted at all.
webhook_sources = sa.Table(
    "webhook_sources",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("tolerance", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per verified delivery: the sender's event id is unique per source (a replay is a no-op), the
# body is kept as received (JSON), and ``status`` says whether it became events (``processed``) or not
# (``failed``, with its ``error``; replayable). ``email`` is the person it was about, when known, for
# the GDPR erasure; ``anonymous_id`` the id its events carried.
inbound_webhooks = sa.Table(
    "inbound_webhooks",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("source", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("type", sa.String(255)),
    sa.Column("received_at", UTCDateTime(), nullable=False),
    sa.Column("body", json_type(), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("email", sa.String(320)),
    sa.Column("anonymous_id", sa.String(255)),
    # the sender's id of the person (a Stripe customer): a later delivery naming only it finds the email
    sa.Column("subject", sa.String(255)),
    sa.Column("processed_at", UTCDateTime()),
    sa.UniqueConstraint("source", "sender_id"),
    sa.Index("ix_inbound_webhooks_email", "email"),
    sa.Index("ix_inbound_webhooks_anonymous_id", "anonymous_id"),
    sa.Index("ix_inbound_webhooks_status", "status", "id"),
    sa.Index("ix_inbound_webhooks_subject", "source", "subject"),
)
