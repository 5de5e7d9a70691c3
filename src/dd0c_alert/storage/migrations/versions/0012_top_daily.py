"""Each completed day's top fingerprints per tenant (``storage.top_daily``), filled for
the history already stored, and an index of the daily fingerprint counts by
fingerprint (built CONCURRENTLY on PostgreSQL, outside the transaction), so analytics
sums the window's counts of its candidates only.

PostgreSQL: the row-level security policy of every tenant table. Days the fill does
not list (today, and the hour after midnight) the scheduled jobs list later; until
then analytics reads their fingerprints directly.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 04:00:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from dd0c_alert.storage import schema, top_daily

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_TENANT = "current_setting('app.tenant_id', true)"
TIME = schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollups_top_daily",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("day", TIME, nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "fingerprint"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE rollups_top_daily ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON rollups_top_daily"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
    end = top_daily.completed_before(datetime.now(UTC))
    op.execute(
        sa.text(
            "INSERT INTO rollups_top_daily (tenant_id, day, fingerprint)"
            " SELECT tenant_id, day, fingerprint FROM (SELECT tenant_id, day, fingerprint,"
            " row_number() OVER (PARTITION BY tenant_id, day"
            " ORDER BY alerts DESC, fingerprint) AS n"
            " FROM rollups_fingerprint_daily WHERE day < :end) AS ranked WHERE n <= :k"
        ).bindparams(sa.bindparam("end", end, type_=TIME), k=top_daily.K)
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_rollups_fingerprint_daily_fp",
            "rollups_fingerprint_daily",
            ["tenant_id", "fingerprint", "day"],
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_rollups_fingerprint_daily_fp", table_name="rollups_fingerprint_daily")
    op.drop_table("rollups_top_daily")
