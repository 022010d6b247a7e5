"""Tables owned by the scoring domain."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, json_type

#: Where the operator's score bands are kept (:mod:`leadflow.kernel.config`), and the name of the lowest
#: band when none are set. The segment compiler reads them: a contact without a score is in the lowest
#: band (see :mod:`leadflow.scoring.bands`).
BANDS_KEY = "scoring.bands"
DEFAULT_LOWEST_BAND = "cold"

scoring_rules = sa.Table(
    "scoring_rules",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # behavioral | demographic | firmographic
    sa.Column("event", sa.String(255)),  # behavioural rules on track events
    sa.Column("definition", json_type(), nullable=False),
    sa.Column("points", sa.Float, nullable=False),
    sa.Column("max_occurrences", sa.Integer),
    sa.Column("window_seconds", sa.Integer),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),  # bumped on every change
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Behavioural occurrences per contact, rule and UTC day: the per-rule counters an event increments.
score_counters = sa.Table(
    "score_counters",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column(
        "rule_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("scoring_rules.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Index("ix_score_counters_rule_id_day", "rule_id", "day"),
)

# What each rule currently gives each contact: the score's explanation.
score_points = sa.Table(
    "score_points",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column(
        "rule_id",
        sa.String(ID_LENGTH),
        sa.ForeignKey("scoring_rules.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Column("points", sa.Float, nullable=False),
    sa.Index("ix_score_points_rule_id", "rule_id"),
)

contact_scores = sa.Table(
    "contact_scores",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("total", sa.Float, nullable=False),
    sa.Column("behavioral", sa.Float, nullable=False),
    sa.Column("demographic", sa.Float, nullable=False),
    sa.Column("firmographic", sa.Float, nullable=False),
    sa.Column("engagement", sa.Float, nullable=False),
    sa.Column("band", sa.String(50), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_contact_scores_total", "total"),
)
