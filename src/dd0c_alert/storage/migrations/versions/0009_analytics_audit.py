"""Analytics rollups, integration stats, audit log, product events, onboarding steps;
alerts per month (the quota); plans on tenants, secret rotation and disabling on
integrations.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dd0c_alert.storage import schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = schema.UTCDateTime(timezone=True)
TABLES = (
    "rollups_hourly",
    "usage_alerts",
    "rollups_fingerprint_daily",
    "integration_stats",
    "audit_log",
    "product_events",
    "onboarding_steps",
)
_TENANT = "current_setting('app.tenant_id', true)"


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(length=32), nullable=False)


def _count(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer(), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("plan", sa.String(length=32), nullable=True))
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("previous_secret_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_secret_until", TIME, nullable=True))
    op.create_index("ix_incidents_tenant_first", "incidents", ["tenant_id", "first_at"])
    op.create_table(
        "rollups_hourly",
        _id("tenant_id"),
        sa.Column("hour", TIME, nullable=False),
        sa.Column("service", sa.String(length=256), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        _count("alerts"),
        _count("incidents_opened"),
        _count("pages"),
        sa.PrimaryKeyConstraint("tenant_id", "hour", "service", "source", "severity"),
    )
    op.create_table(
        "usage_alerts",
        _id("tenant_id"),
        sa.Column("month", sa.String(length=7), nullable=False),
        _count("alerts"),
        sa.PrimaryKeyConstraint("tenant_id", "month"),
    )
    op.create_table(
        "rollups_fingerprint_daily",
        _id("tenant_id"),
        sa.Column("day", TIME, nullable=False),
        sa.Column("fingerprint", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        _count("alerts"),
        sa.PrimaryKeyConstraint("tenant_id", "day", "fingerprint"),
    )
    op.create_table(
        "integration_stats",
        _id("tenant_id"),
        _id("integration_id"),
        sa.Column("hour", TIME, nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        _count("count"),
        sa.Column("last_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "integration_id", "hour", "outcome"),
    )
    op.create_table(
        "audit_log",
        _id(),
        _id("tenant_id"),
        sa.Column("at", TIME, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=40), nullable=False),
        sa.Column("target_id", sa.String(length=200), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("client", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_log_tenant_id", "audit_log", ["tenant_id", "id"])
    op.create_table(
        "product_events",
        _id(),
        _id("tenant_id"),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_product_events_tenant_id", "product_events", ["tenant_id", "id"])
    op.create_table(
        "onboarding_steps",
        _id("tenant_id"),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("at", TIME, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "step"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_index("ix_incidents_tenant_first", table_name="incidents")
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("previous_secret_until")
        batch.drop_column("previous_secret_encrypted")
        batch.drop_column("enabled")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("plan")
