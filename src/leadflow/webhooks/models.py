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
    # a person's deliveries, for the GDPR erasure and export (``webhooks.outbox``)
    sa.Index("ix_webhook_deliveries_contact_id", "contact_id"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "due_at",
        postgresql_where=sa.text("status = 'queued'"),
        sqlite_where=sa.text("status = 'queued'"),
    ),
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
