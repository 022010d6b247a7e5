"""Tables owned by the scheduling domain. Other domains use :mod:`leadflow.scheduling.service`."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

BOOKED = "booked"
CANCELED = "canceled"

# A consultant's booking profile: a CRM user who can be booked, with the services they offer
# (``[{"name": ..., "duration": minutes}]``) and their weekly availability in their own time zone
# (``{"mon": [["09:00", "12:00"], ...]}``).
scheduling_profiles = sa.Table(
    "scheduling_profiles",
    metadata,
    # no foreign key: deleting the CRM user leaves a profile nobody can book (skipped everywhere)
    sa.Column("user_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("services", json_type(), nullable=False),
    sa.Column("availability", json_type(), nullable=False),
    sa.Column("slot_minutes", sa.Integer, nullable=False),
    sa.Column("buffer_before", sa.Integer, nullable=False),  # minutes
    sa.Column("buffer_after", sa.Integer, nullable=False),  # minutes
    sa.Column("min_notice", sa.Integer, nullable=False),  # minutes
    sa.Column("horizon_days", sa.Integer, nullable=False),
    sa.Column("ics_url", sa.Text),  # an http(s) URL or a file path
    sa.Column("ics_refreshed_at", UTCDateTime()),
    sa.Column("ics_error", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Busy times read from a consultant's ICS feed (replaced whole on each refresh).
scheduling_busy = sa.Table(
    "scheduling_busy",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("summary", sa.String(500)),
    sa.Index("ix_scheduling_busy_user_id_starts_at", "user_id", "starts_at"),
)

# A booked (or cancelled) consultation. At most one live booking starts at one time for one
# consultant (the partial unique index), whatever races.
scheduling_bookings = sa.Table(
    "scheduling_bookings",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("user_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id"), nullable=False),
    sa.Column("contact_id", sa.String(ID_LENGTH)),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("starts_at", UTCDateTime(), nullable=False),
    sa.Column("ends_at", UTCDateTime(), nullable=False),
    sa.Column("tz", sa.String(64), nullable=False),  # the invitee's time zone
    sa.Column("status", sa.String(12), nullable=False),  # booked | canceled
    sa.Column("sequence", sa.Integer, nullable=False),  # the invitation's SEQUENCE
    sa.Column("source", sa.String(16), nullable=False),  # api | calendly
    sa.Column("external_id", sa.String(500)),  # Calendly: the invitee's URI
    sa.Column("notes", sa.Text),
    sa.Column("canceled_at", UTCDateTime()),
    sa.Column("cancel_reason", sa.String(500)),  # "rescheduled" when Calendly moves it
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index(
        "ux_scheduling_bookings_live_slot",
        "user_id",
        "starts_at",
        unique=True,
        sqlite_where=sa.text("status = 'booked'"),
        postgresql_where=sa.text("status = 'booked'"),
    ),
    sa.Index("ix_scheduling_bookings_user_id_ends_at", "user_id", "ends_at"),
    sa.Index("ix_scheduling_bookings_contact_id", "contact_id"),
    sa.Index("ix_scheduling_bookings_external_id", "external_id"),
)

# A request no preferred time of which was free: kept for a person to handle.
scheduling_requests = sa.Table(
    "scheduling_requests",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("contact_id", sa.String(ID_LENGTH)),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("service", sa.String(200), nullable=False),
    sa.Column("preferred", json_type(), nullable=False),  # ISO times asked for
    sa.Column("tz", sa.String(64), nullable=False),
    sa.Column("notes", sa.Text),
    sa.Column("status", sa.String(12), nullable=False),  # pending | booked
    sa.Column("booking_id", sa.String(ID_LENGTH)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_scheduling_requests_contact_id", "contact_id"),
)
