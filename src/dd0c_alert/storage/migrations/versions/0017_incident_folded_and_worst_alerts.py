"""Bounded notification reads for storm-sized incidents: ``incidents.folded`` counts the
deliveries folded into an incident's alerts, and ``ix_alerts_incident_worst`` orders
its alerts as a notification lists them.

A notification read ``sum(repeat_count)`` over every alert of its incident and sorted
them all for the worst twenty: about 0.3 s at 200,000 alerts, once per planned update,
in the interpreter the worker shares. The count is now kept by the worker; the index
(which replaces the (tenant, incident) one, its prefix) hands over each severity's
worst alerts first. The count starts as what the notification showed until now: the
sum of the alerts' repeat counts beyond one each. Processes of the previous version
running during the upgrade leave it as it is (the column has a default); the index
drop loses them nothing the new index does not serve.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 12:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_BACKFILL = (
    "UPDATE incidents SET folded = {}(0, COALESCE((SELECT SUM(alerts.repeat_count)"
    " FROM alerts WHERE alerts.tenant_id = incidents.tenant_id"
    " AND alerts.incident_id = incidents.id), 0) - incidents.alert_count)"
)


def upgrade() -> None:
    op.add_column(
        "incidents", sa.Column("folded", sa.Integer(), nullable=False, server_default="0")
    )
    bind = op.get_bind()
    op.execute(_BACKFILL.format("GREATEST" if bind.dialect.name == "postgresql" else "MAX"))
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_alerts_incident_worst",
            "alerts",
            ["tenant_id", "incident_id", "severity", sa.text("repeat_count DESC"), "started_at"],
            postgresql_concurrently=True,
        )
        op.drop_index(
            "ix_alerts_tenant_incident", table_name="alerts", postgresql_concurrently=True
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_alerts_tenant_incident",
            "alerts",
            ["tenant_id", "incident_id"],
            postgresql_concurrently=True,
        )
        op.drop_index("ix_alerts_incident_worst", table_name="alerts", postgresql_concurrently=True)
    op.drop_column("incidents", "folded")
