"""Tenant scope for PostgreSQL's row-level security.

Every tenant table's policy compares ``tenant_id`` with the transaction-local
setting ``app.tenant_id``; a transaction sees and writes only the rows of the tenant
it is scoped to. On SQLite the scope is a no-op: queries are tenant-scoped in code
there, as they are on PostgreSQL too (RLS is the second lock, not the first).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

SETTING = "app.tenant_id"
_SET = sa.text("SELECT set_config('app.tenant_id', :tenant_id, true)")


def scope(conn: sa.Connection, tenant_id: str) -> None:
    """Scope the rest of the current transaction to ``tenant_id`` (may be called
    again to switch tenants inside one transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SET, {"tenant_id": tenant_id})


@contextmanager
def scoped(engine: sa.Engine, tenant_id: str) -> Iterator[sa.Connection]:
    """A transaction scoped to one tenant; commits on normal exit."""
    with engine.begin() as conn:
        scope(conn, tenant_id)
        yield conn


USER_SETTING = "app.user_id"
_SET_USER = sa.text("SELECT set_config('app.user_id', :user_id, true)")


def scope_user(conn: sa.Connection, user_id: str) -> None:
    """Let the rest of the current transaction see ``user_id``'s own account rows
    (``users``, ``password_resets``) whatever its tenant scope (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SET_USER, {"user_id": user_id})
