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


_SET_READING = sa.text(
    "SELECT set_config('app.tenant_id', :tenant_id, true),"
    " set_config('plan_cache_mode', 'force_custom_plan', true)"
)
_PLAN_FOR_VALUES = sa.text("SELECT set_config('plan_cache_mode', 'force_custom_plan', true)")


@contextmanager
def reading(engine: sa.Engine, tenant_id: str) -> Iterator[sa.Connection]:
    """A read transaction scoped to one tenant whose statements PostgreSQL plans for
    their actual values every time (see ``plan_for_values``).

    At a million alerts, the top-noisy sums went from 9 ms to 4.1 s once generic (a
    sequential scan testing each row against a list of parameters). Planning costs
    well under a millisecond; the plan a large tenant needs is worth it for the API's
    and dashboard's reads."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_SET_READING, {"tenant_id": tenant_id})
        yield conn


def plan_for_values(conn: sa.Connection) -> None:
    """Have PostgreSQL plan the rest of the transaction's statements for their actual
    values and the tables' current size, every time.

    psycopg prepares a statement on its fifth execution, and PostgreSQL may then keep
    a generic plan: costed for unknown values and for the tables as they were then. A
    worker's connection prepared its lookups while a new tenant's tables were nearly
    empty and kept those plans as they grew: the fingerprint lookups scanned every
    alert of the tenant, and a production worker fell from 1,000 single alerts/s to
    100 within a minute (``bench/soak.py --mode production``). Planning each
    statement costs less than the batch it serves: ``bench/correlation.py --part
    worker --mode production``, 100-alert groups 2,549 -> 3,281 alerts/s, single
    alerts 2,189 -> 2,141."""
    if conn.dialect.name == "postgresql":
        conn.execute(_PLAN_FOR_VALUES)


USER_SETTING = "app.user_id"
_SET_USER = sa.text("SELECT set_config('app.user_id', :user_id, true)")


def scope_user(conn: sa.Connection, user_id: str) -> None:
    """Let the rest of the current transaction see ``user_id``'s own account rows
    (``users``, ``password_resets``) whatever its tenant scope (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SET_USER, {"user_id": user_id})
