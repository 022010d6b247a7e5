"""connectors.options: a connector's non-secret vendor settings (Pipedrive's pipeline and stages,
Salesforce's object and external-id field, Mailchimp's audience) as plain JSON beside the sealed
credentials. Existing connectors start with ``{}`` and keep reading those settings from their
credentials (sealed with the secret key, which a migration does not hold: nothing is moved).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from leadflow.kernel.types import json_type

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.add_column(sa.Column("options", json_type(), nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("connectors") as batch:
        batch.drop_column("options")
