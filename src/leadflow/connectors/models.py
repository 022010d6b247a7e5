"""Tables owned by the connectors domain: connector instances, identity links, the sync outbox, the
field audit and the conflicts left for a human (see :mod:`leadflow.connectors.service`)."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, bigint_pk, json_type

# One row per connected vendor account. ``credentials`` is sealed (kernel.sealed) and never leaves the
# domain; ``options`` (the vendor's non-secret settings: connectors.options), ``mapping``, ``triggers``,
# ``objects``, ``conflict`` and ``limits`` are declarative JSON (connectors.mapping, connectors.triggers).
connectors = sa.Table(
    "connectors",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("vendor", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("credentials", sa.Text, nullable=False),  # sealed JSON
    # {"pipeline_id": 5, ...}: what the vendor module's OPTIONS name; older connectors' are in credentials
    sa.Column("options", json_type(), nullable=False, server_default="{}"),
    sa.Column("host", sa.Text),  # the vendor's API base URL (None: the vendor's default)
    sa.Column("mapping", json_type(), nullable=False),
    sa.Column("triggers", json_type(), nullable=False),
    sa.Column("objects", json_type(), nullable=False),  # ["contact", "company", "deal", "activity"]
    sa.Column("direction", sa.String(16), nullable=False),  # push | both
    sa.Column("conflict", json_type(), nullable=False),  # {"*": policy, "<remote field>": policy}
    sa.Column("limits", json_type()),  # {"rate": per second, "burst": n, "batch": n}
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("health_threshold", sa.Float, nullable=False),
    sa.Column("pulled_until", UTCDateTime()),  # the pull cursor (the vendor's modification time)
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The remote record each local one is written to, after the first write: later writes go by
# ``remote_id``, so an email change updates the same remote record.
connector_links = sa.Table(
    "connector_links",
    metadata,
    sa.Column("connector_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # contact | company | deal | activity
    sa.Column("local_id", sa.String(64), primary_key=True),
    sa.Column("remote_id", sa.String(64), nullable=False),
    sa.Column("remote_modified_at", UTCDateTime()),
    sa.Column("synced_at", UTCDateTime(), nullable=False),
    # the remote fields as last written or read: the old values of the audit, what a pull compares with
    sa.Column("fields", json_type(), nullable=False),
    # (connector, remote id, kind): with stale statistics the planner must not mistake it for the primary
    # key when looking links up by local id (migration 0028)
    sa.Index("ix_connector_links_remote", "connector_id", "remote_id", "kind"),
)

# The sync outbox: one row per (connector, kind, local id), written in the transaction of the change.
# Several changes of one record coalesce into one row (its ``version`` grows, ``enqueued_at`` keeps the
# first); the worker leases due rows (``next_at`` moves to the lease's end) and deletes a row once the
# version it wrote is still the row's.
connector_outbox = sa.Table(
    "connector_outbox",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("connector_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # contact | company | deal | activity | erasure
    sa.Column("local_id", sa.String(64), nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH)),  # the person it is about (erasure, audit)
    sa.Column("payload", json_type()),  # erasure: {"remote_id"}; nothing personal
    sa.Column("state", sa.String(12), nullable=False),  # pending | dead
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("enqueued_at", UTCDateTime(), nullable=False),
    sa.Column("next_at", UTCDateTime(), nullable=False),
    sa.Column("leased_until", UTCDateTime()),
    sa.Column("last_error", sa.Text),
    sa.Column("dead_at", UTCDateTime()),
    sa.UniqueConstraint("connector_id", "kind", "local_id"),
    sa.Index(  # (next_at, id): the claim's order, walked without a sort (migration 0028)
        "ix_connector_outbox_due",
        "next_at",
        "id",
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    ),
    sa.Index("ix_connector_outbox_contact", "contact_id"),
)

# Every field written or read: old and new value, direction and outcome (personal: deleted with the
# person, except the record that their erasure reached the vendor, which holds no value).
connector_audit = sa.Table(
    "connector_audit",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("connector_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("local_id", sa.String(64), nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH)),
    sa.Column("remote_id", sa.String(64)),
    sa.Column("field", sa.String(200)),
    sa.Column("old_value", sa.Text),
    sa.Column("new_value", sa.Text),
    sa.Column("direction", sa.String(8), nullable=False),  # push | pull | erase
    sa.Column("outcome", sa.String(16), nullable=False),  # written | read | kept | failed | erased | dead
    sa.Column("detail", sa.Text),
    sa.Column("lag_ms", sa.Integer),  # a record's summary row: from the first change to the outcome
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Index("ix_connector_audit_connector", "connector_id", "at"),
    sa.Index("ix_connector_audit_contact", "contact_id", "at"),
)

# A vendor answered "several records match" (or the like): nothing was written, a human decides.
connector_conflicts = sa.Table(
    "connector_conflicts",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("connector_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("local_id", sa.String(64), nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH)),
    sa.Column("candidates", json_type(), nullable=False),  # remote ids
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("resolved_at", UTCDateTime()),
    sa.Index("ix_connector_conflicts_connector", "connector_id", "created_at"),
)
