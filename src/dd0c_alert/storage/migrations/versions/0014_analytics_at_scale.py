"""Analytics at a million alerts: each listed day's count beside its top fingerprints
(``rollups_top_daily.alerts``, filled for the days already listed), so a window's
candidates are ranked from the lists alone and only a bounded shortlist has its exact
window counts summed (``storage.top_daily``); and two partial indexes of the live
incidents: by first time with the acknowledge and resolve times (MTTA/MTTR from the
index alone) and of those that flapped (the flapping list without walking the window).

Adds a column with a default (no rewrite) and indexes built CONCURRENTLY on
PostgreSQL, outside the transaction: nothing is removed or locked for long.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 06:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# As schema.LIVE_INCIDENT and schema.FLAPPED say them (and the queries with them).
LIVE = "merged_into IS NULL"
FLAPPED = "flapping != '[]'"

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "rollups_top_daily",
        sa.Column("alerts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute(
        "UPDATE rollups_top_daily SET alerts = COALESCE((SELECT f.alerts"
        " FROM rollups_fingerprint_daily f WHERE f.tenant_id = rollups_top_daily.tenant_id"
        " AND f.day = rollups_top_daily.day AND f.fingerprint = rollups_top_daily.fingerprint),"
        " 0)"
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_incidents_tenant_first_times",
            "incidents",
            ["tenant_id", "first_at", "acknowledged_at", "resolved_at", "merged_into"],
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
            postgresql_concurrently=True,
        )
        op.create_index(
            "ix_incidents_tenant_flapping",
            "incidents",
            ["tenant_id", "first_at"],
            sqlite_where=sa.text(f"{FLAPPED} AND {LIVE}"),
            postgresql_where=sa.text(f"{FLAPPED}::jsonb AND {LIVE}"),
            postgresql_concurrently=True,
        )


def downgrade() -> None:
    op.drop_index("ix_incidents_tenant_flapping", table_name="incidents")
    op.drop_index("ix_incidents_tenant_first_times", table_name="incidents")
    with op.batch_alter_table("rollups_top_daily") as batch:
        batch.drop_column("alerts")
