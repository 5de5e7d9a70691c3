"""Indexes the ingest queue by tenant, for claims that take turns across tenants
(``storage/fair_claim.py``): SQLite's ``ingest_queue`` and pgmq's queue table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_ingest_queue_tenant", "ingest_queue", ["tenant_id", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            sa.text(
                "CREATE INDEX IF NOT EXISTS ix_dd0c_ingest_tenant"
                " ON pgmq.q_dd0c_ingest ((message->>'tenant_id'), msg_id)"
            )
        )
