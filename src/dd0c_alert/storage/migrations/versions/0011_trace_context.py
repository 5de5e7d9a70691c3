"""The W3C trace context of the decision behind each notification intent and delivery,
so the notifier's delivery span continues the webhook's trace (docs/operations.md).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 02:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: an add that rewrites no row and that the previous
    # release, which never names the column, keeps working beside.
    for table in ("notification_intents", "deliveries"):
        op.add_column(table, sa.Column("traceparent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in ("notification_intents", "deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("traceparent")
