"""PostgreSQL production mode: row-level security per tenant, GIN indexes on the JSONB
documents, functions for the few lookups that must cross tenants. Nothing on SQLite.

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


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
