"""Pages held back by quiet hours: ``held_pages``, one row per incident whose first
page (an ``opened`` or a never-announced ``reopened``) a route's quiet hours kept
from going out, written when the notifier plans it so.

The notifier used to infer "was held" from the tenant's routes at release time, so a
page held while the team removed the quiet hours, or deleted, renamed or re-matched
the route, was never sent. Rows go when the page is released, or when the incident
was acknowledged, resolved, merged or announced meanwhile: the table holds open
incidents only and needs no retention.

Pages the previous version held are recorded too: every open, paged, unacknowledged
incident announced nowhere, of a tenant with a route that has quiet hours (what the
previous release looked for). The notifier sends those that reach a destination and
drops the rows of the others as they close.

PostgreSQL: the row-level security policy of every tenant table.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-07 15:30:00.000000
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from dd0c_alert.storage import schema

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_TENANT = "current_setting('app.tenant_id', true)"
TIME = schema.UTCDateTime(timezone=True)
_QUIET = {
    "postgresql": "r.definition ->> 'quiet_hours' IS NOT NULL",
    "sqlite": "json_extract(r.definition, '$.quiet_hours') IS NOT NULL",
}
_HELD_BEFORE = (
    "INSERT INTO held_pages (tenant_id, incident_id, event, held_at)"
    " SELECT i.tenant_id, i.id, 'opened', :now FROM incidents i"
    " WHERE i.status = 'open' AND i.paged AND i.acknowledged_at IS NULL"
    " AND i.merged_into IS NULL"
    " AND EXISTS (SELECT 1 FROM routes r WHERE r.tenant_id = i.tenant_id AND {quiet})"
    " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.tenant_id = i.tenant_id"
    " AND d.incident_id = i.id AND d.kind IN ('message', 'mail', 'event'))"
)


def upgrade() -> None:
    op.create_table(
        "held_pages",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("held_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "incident_id"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE held_pages ENABLE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY tenant_isolation ON held_pages"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
    dialect = op.get_bind().dialect.name
    held_before = _HELD_BEFORE.format(quiet=_QUIET.get(dialect, _QUIET["sqlite"]))
    now = sa.bindparam("now", datetime.now(UTC), type_=TIME)
    op.execute(sa.text(held_before).bindparams(now))


def downgrade() -> None:
    op.drop_table("held_pages")
