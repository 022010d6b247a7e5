"""contacts: touchpoints of every kind (``kind``: page, track, click; ``journey`` of an email click),
backfilled from the processed events, so attribution reads one table and never the event log

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# The backfill, as leadflow.contacts.touchpoints records them at ingest today (frozen here): a person's
# email click (leadflow.email_clicked not flagged machine_generated) is a ``click`` touch (source and
# medium 'email', campaign the journey or else the broadcast, the journey); a contact's own track event
# with context.campaign.source, or any lead.captured, is a ``track`` touch (source, medium and campaign
# from context.campaign, else properties.utm, and properties.source for the source). Text or number
# values only, trimmed, empty ones NULL, cut to 255 characters; events applied without error only (their contact resolved
# through a later merge).
_INSERT = """
INSERT INTO touchpoints (contact_id, event_id, occurred_at, source, medium, campaign, journey, kind)
SELECT c.id, e.id, e.timestamp, {source}, {medium}, {campaign}, {journey}, {kind}
FROM events e
LEFT JOIN contact_merges m ON m.merged_id = e.contact_id
JOIN contacts c ON c.id = coalesce(m.survivor_id, e.contact_id)
WHERE e.processed_at IS NOT NULL AND e.error IS NULL AND e.type = 'track' AND (
    (e.event = 'leadflow.email_clicked' AND e.source = 'internal'
     AND coalesce({machine}, false) = false)
    OR (e.source <> 'internal' AND ({campaign_source} IS NOT NULL OR e.event = 'lead.captured')))
ORDER BY e.id
"""
_CLICKED = "e.event = 'leadflow.email_clicked' AND e.source = 'internal'"


def _value(scalar: str) -> str:
    return f"substr(nullif(trim({scalar}), ''), 1, 255)"


def _first(*values: str) -> str:
    return f"coalesce({', '.join(values)})"


def _sql(dialect: str) -> str:
    if dialect == "postgresql":

        def field(column: str, *path: str) -> str:
            where = "{" + ",".join(path) + "}"
            return _value(
                f"CASE WHEN jsonb_typeof(e.{column} #> '{where}') IN ('string', 'number') "
                f"THEN e.{column} #>> '{where}' END"
            )

        machine = "CAST(e.properties ->> 'machine_generated' AS BOOLEAN)"
    else:

        def field(column: str, *path: str) -> str:
            where = "$." + ".".join(path)
            return _value(
                f"CASE WHEN json_type(e.{column}, '{where}') IN ('text', 'integer', 'real') "
                f"THEN CAST(json_extract(e.{column}, '{where}') AS TEXT) END"
            )

        machine = "CAST(json_extract(e.properties, '$.machine_generated') AS BOOLEAN)"
    campaign_source = field("context", "campaign", "source")
    journey = field("properties", "journey_id")
    return _INSERT.format(
        kind=f"CASE WHEN {_CLICKED} THEN 'click' ELSE 'track' END",
        source=f"CASE WHEN {_CLICKED} THEN 'email' ELSE "
        + _first(campaign_source, field("properties", "utm", "utm_source"), field("properties", "source"))
        + " END",
        medium=f"CASE WHEN {_CLICKED} THEN 'email' ELSE "
        + _first(field("context", "campaign", "medium"), field("properties", "utm", "utm_medium"))
        + " END",
        campaign=f"CASE WHEN {_CLICKED} THEN "
        + _first(journey, field("properties", "broadcast_id"))
        + " ELSE "
        + _first(field("context", "campaign", "name"), field("properties", "utm", "utm_campaign"))
        + " END",
        journey=f"CASE WHEN {_CLICKED} THEN {journey} END",
        machine=machine,
        campaign_source=campaign_source,
    )


def upgrade() -> None:
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="page", nullable=False))
        batch_op.add_column(sa.Column("journey", sa.String(length=255), nullable=True))
    op.execute(_sql(op.get_bind().dialect.name))


def downgrade() -> None:
    op.execute("DELETE FROM touchpoints WHERE kind <> 'page'")
    with op.batch_alter_table("touchpoints", schema=None) as batch_op:
        batch_op.drop_column("journey")
        batch_op.drop_column("kind")
