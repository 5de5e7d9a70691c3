"""A tenant that holds an integration secret, for /readyz's secret-key check.

A server whose key cannot read the stored secrets (a restore onto a folder with
another key, a wrong ``DD0C_SECRET_KEY``) answered every webhook 503 while /readyz
said ready. Readiness now decrypts one stored secret; on PostgreSQL the application
role sees a tenant's integrations only inside that tenant's scope, so this function
(run as its owner, like those of 0004) names one tenant that has an integration,
the oldest, and nothing else: the read of the secret itself stays tenant-scoped.
Nothing on SQLite.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 13:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

SIGNATURE = "dd0c_a_tenant_with_integration()"
BODY = "SELECT tenant_id FROM integrations ORDER BY id LIMIT 1"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        f"CREATE FUNCTION {SIGNATURE} RETURNS text LANGUAGE sql STABLE"
        f" SECURITY DEFINER SET search_path = public, pg_temp AS $$ {BODY} $$"
    )
    op.execute(f"REVOKE EXECUTE ON FUNCTION {SIGNATURE} FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP FUNCTION {SIGNATURE}")
