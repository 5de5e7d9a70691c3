"""Indexes alerts by (tenant, fingerprint, start), so the worker's per-fingerprint
history (the last 7 days, for the noise score and flapping) is read by fingerprint.

With only (tenant, fingerprint, status) to offer, both SQLite's and PostgreSQL's
planners preferred the (tenant, start) index for a batch's 500 fingerprints: a scan
of every alert of the tenant's last 7 days, in every batch, so the worker slowed as
history grew (a storm's one incident of 100,000 alerts spent 70 % of its SQL time
there). Built CONCURRENTLY on PostgreSQL, outside the transaction. The older index
stays until a contract-phase migration drops it (rolling upgrades).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 06:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_alerts_tenant_fingerprint_started",
            "alerts",
            ["tenant_id", "fingerprint", "started_at"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_alerts_tenant_fingerprint_started", table_name="alerts")
