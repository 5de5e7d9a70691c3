"""PostgreSQL production mode: row-level security per tenant, GIN indexes on the JSONB
documents, functions for the few lookups that must cross tenants. Nothing on SQLite.

Row-level security is enabled, not forced: the owner role (migrations, admin work)
keeps full access, while the application role sees and writes only the rows of the
tenant its transaction is scoped to (``storage.tenancy``). The functions run as their
owner and answer ids only, so what crosses tenants stays narrow and reviewable.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 21:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Every table with a ``tenant_id`` column at this revision. A later migration that
#: adds a tenant table enables RLS on it itself (tests/storage/test_rls.py fails
#: until it does).
TENANT_TABLES = (
    "alerts",
    "api_keys",
    "dead_letters",
    "decisions",
    "deploys",
    "feedback",
    "idempotency_keys",
    "incident_events",
    "incident_services",
    "incidents",
    "ingest_queue",
    "inhibit_rules",
    "integrations",
    "service_dependencies",
    "silences",
    "suggestions",
    "tenant_settings",
    "usage",
)

_TENANT = "current_setting('app.tenant_id', true)"

#: Definitions ``(signature, returns, volatility, body)``; each runs as its owner.
FUNCTIONS = (
    (
        "dd0c_tenant_for_api_key(p_key_hash text)",
        "text",
        "STABLE",
        "SELECT tenant_id FROM api_keys WHERE key_hash = p_key_hash",
    ),
    (
        "dd0c_tenant_ids()",
        "SETOF text",
        "STABLE",
        "SELECT id FROM tenants ORDER BY id",
    ),
    (
        "dd0c_dead_letter_tenant(p_ref text)",
        "text",
        "STABLE",
        "SELECT tenant_id FROM dead_letters WHERE id = p_ref OR event_id = p_ref"
        " ORDER BY id LIMIT 1",
    ),
    (
        "dd0c_purge_idempotency_keys(p_now double precision)",
        "bigint",
        "VOLATILE",
        "WITH gone AS (DELETE FROM idempotency_keys WHERE expires_at < p_now RETURNING 1)"
        " SELECT count(*) FROM gone",
    ),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(
        "ix_alerts_labels",
        "alerts",
        ["labels"],
        postgresql_using="gin",
        postgresql_ops={"labels": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_incidents_services",
        "incidents",
        ["services"],
        postgresql_using="gin",
        postgresql_ops={"services": "jsonb_path_ops"},
    )
    policies = [(table, "tenant_id") for table in TENANT_TABLES] + [("tenants", "id")]
    for table, column in policies:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING ({column} = {_TENANT}) WITH CHECK ({column} = {_TENANT})"
        )
    for signature, returns, volatility, body in FUNCTIONS:
        op.execute(
            f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE sql {volatility}"
            f" SECURITY DEFINER SET search_path = public, pg_temp AS $$ {body} $$"
        )
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
