"""Drops the (tenant, fingerprint, status) index on alerts: migration 0013's (tenant,
fingerprint, started_at) serves every query that used it, and the partial unique
index serves the one firing occurrence, so it only cost the worker a B-tree insert per
alert. Old processes still running during a rolling upgrade lose nothing but that
index, which no query of theirs needs either (dropped CONCURRENTLY on PostgreSQL).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 09:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_alerts_tenant_fingerprint", table_name="alerts", postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_alerts_tenant_fingerprint",
            "alerts",
            ["tenant_id", "fingerprint", "status"],
            postgresql_concurrently=True,
        )
