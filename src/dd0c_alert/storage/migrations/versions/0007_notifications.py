"""Notifications: the outbox the worker writes in its batch transaction, deliveries
with every attempt, routes, per-tenant Slack settings and destination health.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dd0c_alert.storage import schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = schema.UTCDateTime(timezone=True)
TABLES = (
    "notification_intents",
    "deliveries",
    "delivery_attempts",
    "routes",
    "slack_settings",
    "destination_health",
)
_TENANT = "current_setting('app.tenant_id', true)"
#: The reads that cross tenants, as security-definer functions returning ids only:
#: which tenants have notification work (the notifier), and which tenants a Slack
#: workspace's interactions may be for (their signing secrets are tried in turn).
FUNCTIONS = (
    (
        "dd0c_notify_tenants(p_now timestamptz)",
        "SETOF text",
        "STABLE",
        "SELECT tenant_id FROM notification_intents UNION SELECT tenant_id FROM deliveries"
        " WHERE status IN ('pending', 'retrying') AND next_attempt_at <= p_now"
        " AND (leased_until IS NULL OR leased_until <= p_now)",
    ),
    (
        "dd0c_tenants_for_slack_team(p_team text)",
        "SETOF text",
        "STABLE",
        "SELECT tenant_id FROM slack_settings WHERE team_id = p_team OR team_id IS NULL"
        " ORDER BY tenant_id",
    ),
)


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(length=32), nullable=False)


def upgrade() -> None:
    op.create_table(
        "notification_intents",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        _id("tenant_id"),
        _id("incident_id"),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_notification_intents_tenant", "notification_intents", ["tenant_id", "seq"])
    op.create_table(
        "deliveries",
        _id(),
        _id("tenant_id"),
        _id("incident_id"),
        sa.Column("destination_type", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("leased_until", TIME, nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.Column("delivered_at", TIME, nullable=True),
        sa.Column("version_wanted", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("version_sent", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("message_ref", sa.Text(), nullable=True),
        sa.Column("post_started_at", TIME, nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["tenant_id", "status", "next_attempt_at"])
    op.create_index("ix_deliveries_incident", "deliveries", ["tenant_id", "incident_id"])
    op.create_index("ix_deliveries_tenant_id", "deliveries", ["tenant_id", "id"])
    living = sa.text("kind = 'message'")
    op.create_index(
        "ux_deliveries_living_message",
        "deliveries",
        ["tenant_id", "incident_id", "destination_type", "destination"],
        unique=True,
        sqlite_where=living,
        postgresql_where=living,
    )
    op.create_table(
        "delivery_attempts",
        _id(),
        _id("tenant_id"),
        _id("delivery_id"),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_delivery_attempts_delivery", "delivery_attempts", ["tenant_id", "delivery_id"]
    )
    op.create_table(
        "routes",
        _id(),
        _id("tenant_id"),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_routes_tenant_position", "routes", ["tenant_id", "position"])
    op.create_table(
        "slack_settings",
        _id("tenant_id"),
        sa.Column("bot_token_encrypted", sa.Text(), nullable=False),
        sa.Column("signing_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("default_channel", sa.String(length=200), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )
    op.create_index("ix_slack_settings_team", "slack_settings", ["team_id"])
    op.create_table(
        "destination_health",
        _id("tenant_id"),
        sa.Column("destination_type", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "destination_type", "destination"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
    for signature, returns, volatility, body in FUNCTIONS:
        op.execute(
            f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE sql {volatility}"
            f" SECURITY DEFINER SET search_path = public, pg_temp AS $$ {body} $$"
        )
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
