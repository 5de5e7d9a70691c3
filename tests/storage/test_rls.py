"""Row-level security proven at the database, with hand-written SQL as the
application role: whatever the code's ``WHERE`` clauses say, a transaction scoped to
tenant A can neither see nor change tenant B's rows, and the role cannot switch the
protection off. Tenant tables are discovered from the catalog, so a table added
later is covered (and this fails until its migration enables RLS on it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from servers import APP, OWNER, PostgresServer

A, B = "tenant-a", "tenant-b"


def tenant_tables(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Every table holding tenant rows, with the column naming the tenant."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND column_name = 'tenant_id'"
    ).fetchall()
    return {str(name): "tenant_id" for (name,) in rows} | {"tenants": "id"}


def row_values(
    conn: psycopg.Connection[Any], table: str, column: str, tenant: str, tag: str
) -> dict[str, Any]:
    """A valid row for ``table`` owned by ``tenant``: a value for every required
    column, unique per (tenant, tag) so unique constraints hold."""
    columns = conn.execute(
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s"
        " AND is_nullable = 'NO' AND column_default IS NULL",
        (table,),
    ).fetchall()
    values: dict[str, Any] = {}
    for name, data_type, max_length in columns:
        if name == column:
            values[name] = tenant
        elif data_type in ("character varying", "text"):
            values[name] = f"{tenant}{tag}-{name}"[: max_length or None]
        elif data_type in ("integer", "bigint", "smallint"):
            values[name] = 1
        elif data_type in ("double precision", "real", "numeric"):
            values[name] = 1.0
        elif data_type == "boolean":
            values[name] = False
        elif data_type.startswith("timestamp"):
            values[name] = "2026-11-27T10:00:00Z"
        elif data_type == "jsonb":
            values[name] = psycopg.types.json.Jsonb({})
        elif data_type == "bytea":
            values[name] = b"x"
        else:
            raise AssertionError(f"no test value for {table}.{name} ({data_type})")
    return values


def insert(conn: psycopg.Connection[Any], table: str, values: dict[str, Any]) -> int:
    statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(map(sql.Identifier, values)),
        sql.SQL(", ").join(sql.Placeholder() * len(values)),
    )
    return conn.execute(statement, list(values.values())).rowcount


@pytest.fixture
def database(pg_server: PostgresServer, pg_database: str) -> Iterator[tuple[str, dict[str, str]]]:
    """A database with one row per tenant (A and B) in every tenant table, written by
    the owner (RLS is not forced on it); its name and its tenant tables."""
    with pg_server.connect(pg_database, OWNER) as conn:
        tables = tenant_tables(conn)
        for table, column in sorted(tables.items(), key=lambda item: item[0] != "tenants"):
            for tenant in (A, B):
                insert(conn, table, row_values(conn, table, column, tenant, ""))
    yield pg_database, tables


def scoped_conn(server: PostgresServer, database: str) -> psycopg.Connection[Any]:
    conn = psycopg.connect(server.dsn(database, APP))
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (A,))
    return conn


def test_every_tenant_table_has_row_level_security(
    pg_server: PostgresServer, database: tuple[str, dict[str, str]]
) -> None:
    name, tables = database
    assert len(tables) >= 19  # the tables of migration 0004, at least
    with pg_server.connect(name, OWNER) as conn:
        rows = conn.execute(
            "SELECT c.relname, c.relrowsecurity, count(p.polname)"
            " FROM pg_class c LEFT JOIN pg_policy p ON p.polrelid = c.oid"
            " WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY(%s)"
            " GROUP BY c.relname, c.relrowsecurity",
            (list(tables),),
        ).fetchall()
    protected = {table for table, enabled, policies in rows if enabled and policies}
    assert sorted(set(tables) - protected) == []


def test_scoped_to_a_the_app_role_sees_and_changes_only_a(
    pg_server: PostgresServer, database: tuple[str, dict[str, str]]
) -> None:
    name, tables = database
    with scoped_conn(pg_server, name) as conn:
        for table, column in sorted(tables.items()):
            owner = sql.Identifier(column)
            target = sql.Identifier(table)
            seen = conn.execute(sql.SQL("SELECT {} FROM {}").format(owner, target)).fetchall()
            assert seen == [(A,)], table
            where = sql.SQL("WHERE {} = %s").format(owner)
            touch = sql.SQL("UPDATE {} SET {} = {} ").format(target, owner, owner) + where
            assert conn.execute(touch, (A,)).rowcount == 1, table  # A may write its own
            assert conn.execute(touch, (B,)).rowcount == 0, table
            deleted = conn.execute(sql.SQL("DELETE FROM {} ").format(target) + where, (B,))
            assert deleted.rowcount == 0, table
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                insert(conn, table, row_values(conn, table, column, B, "2"))
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql.SQL("UPDATE {} SET {} = %s").format(target, owner), (B,))
    with pg_server.connect(name, OWNER) as conn:  # B's rows are intact
        for table, column in tables.items():
            query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s")
            count = conn.execute(
                query.format(sql.Identifier(table), sql.Identifier(column)), (B,)
            ).fetchone()
            assert count == (1,), table


def test_unscoped_the_app_role_sees_nothing(
    pg_server: PostgresServer, database: tuple[str, dict[str, str]]
) -> None:
    name, tables = database
    with pg_server.connect(name, APP) as conn:
        for table in sorted(tables):
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            assert conn.execute(query).fetchone() == (0,), table
        # A scope set in an earlier transaction does not leak into the next one.
        with conn.transaction():
            conn.execute("SELECT set_config('app.tenant_id', %s, true)", (A,))
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE alerts DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE alerts NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON alerts",
        "CREATE POLICY everything ON alerts USING (true)",
        f"SET ROLE {OWNER}",
        "SET SESSION AUTHORIZATION postgres",
    ],
)
def test_the_app_role_cannot_turn_the_protection_off(
    pg_server: PostgresServer, pg_database: str, statement: str
) -> None:
    with (
        pg_server.connect(pg_database, APP) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(statement)


def test_row_security_off_errors_instead_of_bypassing(
    pg_server: PostgresServer, database: tuple[str, dict[str, str]]
) -> None:
    name, _ = database
    with scoped_conn(pg_server, name) as conn:
        conn.execute("SET row_security = off")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute("SELECT * FROM alerts")


def test_cross_tenant_functions_run_as_owner_and_only_for_granted_roles(
    pg_server: PostgresServer, database: tuple[str, dict[str, str]]
) -> None:
    name, _ = database
    with pg_server.connect(name, OWNER) as conn:
        functions = conn.execute(
            "SELECT proname, prosecdef, proconfig, coalesce(proacl::text[], '{}')"
            " FROM pg_proc WHERE pronamespace = 'public'::regnamespace"
            " AND proname LIKE 'dd0c\\_%'"
        ).fetchall()
    assert sorted(f[0] for f in functions) == [
        "dd0c_a_tenant_with_integration",
        "dd0c_dead_letter_tenant",
        "dd0c_notify_tenants",
        "dd0c_purge_idempotency_keys",
        "dd0c_tenant_for_api_key",
        "dd0c_tenant_for_invitation",
        "dd0c_tenant_for_refresh_token",
        "dd0c_tenant_ids",
        "dd0c_tenants_for_slack_team",
        "dd0c_tenants_for_user",
        "dd0c_user_for_email",
        "dd0c_user_for_password_reset",
    ]
    for proname, definer, config, acl in functions:
        assert definer, proname
        assert "search_path=public, pg_temp" in config, proname
        # No grant to PUBLIC ("=X/owner"); the app role's comes from grant_app_role.
        assert not any(entry.startswith("=") for entry in acl), (proname, acl)
        assert any(entry.startswith(f"{APP}=X/") for entry in acl), (proname, acl)
    with pg_server.connect(name, APP) as conn:
        ids = conn.execute("SELECT dd0c_tenant_ids()").fetchall()
        assert ids == [(A,), (B,)]
        key_hash = f"{B}-key_hash"
        found = conn.execute("SELECT dd0c_tenant_for_api_key(%s)", (key_hash,)).fetchone()
        assert found == (B,)
        dead = conn.execute("SELECT dd0c_dead_letter_tenant(%s)", (f"{B}-event_id",)).fetchone()
        assert dead == (B,)


def test_users_are_visible_only_to_their_tenants_and_themselves(
    pg_server: PostgresServer, pg_database: str
) -> None:
    """``users`` has no tenant: a row shows to a transaction scoped to a tenant the
    user belongs to, or to the user themself, and to nothing else."""
    with pg_server.connect(pg_database, OWNER) as conn:
        conn.execute(
            "INSERT INTO users (id, email, created_at) VALUES"
            " ('u-a', 'a@x.io', now()), ('u-b', 'b@x.io', now())"
        )
        conn.execute(
            "INSERT INTO memberships (tenant_id, user_id, role, created_at)"
            " VALUES (%s, 'u-a', 'owner', now()), (%s, 'u-b', 'owner', now())",
            (A, B),
        )
    with scoped_conn(pg_server, pg_database) as conn:
        assert conn.execute("SELECT id FROM users").fetchall() == [("u-a",)]
        assert conn.execute("UPDATE users SET disabled = true WHERE id = 'u-b'").rowcount == 0
    with pg_server.connect(pg_database, APP) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
        found = conn.execute("SELECT dd0c_user_for_email('b@x.io')").fetchone()
        assert found == ("u-b",)
