"""Accounts: users (in several tenants), memberships with roles, rotating refresh
tokens, invitations, password resets; API keys get a scope, last use, expiry and
revocation (keys made before this are admin keys).

On PostgreSQL the tenant tables get row-level security like every other; ``users``
and ``password_resets`` have no tenant: a user row is visible to a transaction scoped
to a tenant the user belongs to, or to the user themself (``app.user_id``, set once
the caller is known), and a reset only to its user. Lookups that must cross tenants
(an email at login, a refresh / invitation / reset token) are security-definer
functions answering ids only.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dd0c_alert.storage import schema

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TIME = schema.UTCDateTime(timezone=True)
TENANT_TABLES = ("memberships", "refresh_tokens", "invitations")
_TENANT = "current_setting('app.tenant_id', true)"
_USER = "current_setting('app.user_id', true)"
FUNCTIONS = (
    (
        "dd0c_user_for_email(p_email text)",
        "text",
        "STABLE",
        "SELECT id FROM users WHERE email = p_email",
    ),
    (
        "dd0c_tenants_for_user(p_user text)",
        "SETOF text",
        "STABLE",
        "SELECT tenant_id FROM memberships WHERE user_id = p_user ORDER BY created_at, tenant_id",
    ),
    (
        "dd0c_tenant_for_refresh_token(p_hash text)",
        "text",
        "STABLE",
        "SELECT tenant_id FROM refresh_tokens WHERE token_hash = p_hash",
    ),
    (
        "dd0c_tenant_for_invitation(p_hash text)",
        "text",
        "STABLE",
        "SELECT tenant_id FROM invitations WHERE token_hash = p_hash",
    ),
    (
        "dd0c_user_for_password_reset(p_hash text)",
        "text",
        "STABLE",
        "SELECT user_id FROM password_resets WHERE token_hash = p_hash",
    ),
)


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, sa.String(length=32), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(
            sa.Column("scope", sa.String(length=8), nullable=False, server_default="admin")
        )
        batch.add_column(sa.Column("last_used_at", TIME, nullable=True))
        batch.add_column(sa.Column("expires_at", TIME, nullable=True))
        batch.add_column(sa.Column("revoked_at", TIME, nullable=True))
    op.create_table(
        "users",
        _id(),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("password_changed_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "memberships",
        _id("tenant_id"),
        _id("user_id"),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "user_id"),
    )
    op.create_index("ix_memberships_user", "memberships", ["user_id"])
    op.create_table(
        "refresh_tokens",
        _id(),
        _id("tenant_id"),
        _id("user_id"),
        _id("family_id"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("revoked_at", TIME, nullable=True),
        sa.Column("replaced_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_refresh_tokens_user", "refresh_tokens", ["tenant_id", "user_id"])
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["tenant_id", "family_id"])
    op.create_table(
        "invitations",
        _id(),
        _id("tenant_id"),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("invited_by", sa.String(length=400), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("accepted_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_invitations_tenant", "invitations", ["tenant_id", "created_at"])
    op.create_table(
        "password_resets",
        _id(),
        _id("user_id"),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("used_at", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TENANT_TABLES:
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
    member = (
        "EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = users.id"
        " AND m.tenant_id = current_setting('app.tenant_id', true))"
    )
    op.execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY account_access ON users USING (id = {_USER} OR {member})"
        f" WITH CHECK (id = {_USER} OR {member})"
    )
    op.execute("ALTER TABLE password_resets ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY own_resets ON password_resets"
        f" USING (user_id = {_USER}) WITH CHECK (user_id = {_USER})"
    )
    for signature, returns, volatility, body in FUNCTIONS:
        op.execute(
            f"CREATE FUNCTION {signature} RETURNS {returns} LANGUAGE sql {volatility}"
            f" SECURITY DEFINER SET search_path = public, pg_temp AS $$ {body} $$"
        )
        op.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM PUBLIC")
