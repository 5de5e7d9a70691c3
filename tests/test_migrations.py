"""Migration discipline, so processes of the previous version keep working while an
upgrade rolls out (docs/production.md, Upgrades):

- every migration is scanned: a destructive operation (dropping or renaming a table or
  column, changing a column's type, raw DROP/RENAME/ALTER ... TYPE SQL) fails the test
  unless the migration declares itself the contract phase of an expand/contract change
  (``CONTRACT_PHASE = True`` and ``EXPANDS = "<revision of the expand migration>"``);
- a PostgreSQL index on a table that already exists is built CONCURRENTLY, inside
  ``op.get_context().autocommit_block()`` (PostgreSQL refuses CONCURRENTLY in a
  transaction), in every migration after ``RULE_SINCE``; the documented pattern is
  run through ``migrate`` on PostgreSQL and SQLite;
- a database populated at each earlier revision upgrades to head with its rows intact,
  on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import ast
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from dd0c_alert.storage import schema, top_daily
from dd0c_alert.storage.migrate import MIGRATIONS, alembic_config
from servers import OWNER, PostgresServer

VERSIONS = MIGRATIONS / "versions"
#: The head when the concurrent-index rule was made. Migrations up to it are released
#: and not rewritten: their non-concurrent PostgreSQL indexes (0004: GIN on
#: alerts.labels and incidents.services; 0006: ingest_queue and pgmq.q_dd0c_ingest;
#: 0009: incidents (tenant_id, first_at)) lock writes while they build, which matters
#: only when upgrading a large database from before them. Every later one may not.
RULE_SINCE = "0009"

DESTRUCTIVE_CALLS = {
    "drop_table": "drops a table",
    "drop_column": "drops a column",
    "rename_table": "renames a table",
    "drop_constraint": "drops a constraint",
}
DESTRUCTIVE_SQL = [
    (re.compile(r"\bDROP\s+(TABLE|COLUMN|SCHEMA|TYPE)\b", re.I), "raw DROP"),
    (re.compile(r"\bRENAME\s+(TO|COLUMN)\b", re.I), "raw RENAME"),
    (re.compile(r"\bALTER\s+COLUMN\s+\w+\s+(SET\s+DATA\s+)?TYPE\b", re.I), "raw type change"),
    (re.compile(r"\bTRUNCATE\b", re.I), "raw TRUNCATE"),
]


def _migrations() -> list[Path]:
    return sorted(VERSIONS.glob("[0-9]*.py"))


def _revision(path: Path) -> str:
    return path.name.split("_", 1)[0]


def _constants(tree: ast.Module) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _strings(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value


def _upgrade_of(source: str) -> ast.AST:
    """The ``upgrade()`` function (what ``migrate`` runs; a ``downgrade()`` is never run),
    or the whole source when there is none (the scanner's own examples)."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == "upgrade":
            return node
    return tree


def destructive_operations(source: str) -> list[str]:
    """What a migration's upgrade drops, renames or retypes; empty when nothing."""
    tree = _upgrade_of(source)
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        keywords = {k.arg for k in node.keywords}
        if name in DESTRUCTIVE_CALLS:
            found.append(f"line {node.lineno}: {name} {DESTRUCTIVE_CALLS[name]}")
        elif name == "alter_column" and keywords & {"type_", "new_column_name"}:
            found.append(f"line {node.lineno}: alter_column changes a type or a name")
        elif name in ("execute", "exec_driver_sql", "text"):
            for text in _strings(node):
                for pattern, what in DESTRUCTIVE_SQL:
                    if pattern.search(text):
                        found.append(f"line {node.lineno}: {what}: {text[:60]!r}")
    return found


def _autocommit_lines(tree: ast.AST) -> set[int]:
    """Lines inside ``with ….autocommit_block():`` (outside the migration's transaction)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "attr", "") == "autocommit_block"
            for item in node.items
        ):
            inside |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    return inside


def _index_table(call: ast.Call) -> object:
    keywords = {k.arg: k.value for k in call.keywords}
    table = call.args[1] if len(call.args) >= 2 else keywords.get("table_name")
    return table.value if isinstance(table, ast.Constant) else None


def nonconcurrent_indexes(source: str) -> list[str]:
    """PostgreSQL indexes that would lock writes to a live table while they build: built
    without CONCURRENTLY on a table this migration did not create, or CONCURRENTLY but
    inside the migration's transaction (which PostgreSQL refuses)."""
    tree = _upgrade_of(source)
    created: set[str] = set()
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    for call in calls:
        name = getattr(call.func, "attr", "")
        if name == "create_table" and call.args and isinstance(call.args[0], ast.Constant):
            created.add(str(call.args[0].value))
    autocommit = _autocommit_lines(tree)
    found: list[str] = []
    for call in calls:
        name = getattr(call.func, "attr", "")
        concurrent: bool | None = None
        if name == "create_index":
            table = _index_table(call)
            if table is None or table in created:
                continue
            concurrent = any(k.arg == "postgresql_concurrently" for k in call.keywords)
            what = f"index on {table}"
        elif name in ("execute", "text"):
            for text in _strings(call):
                if re.search(r"\bCREATE\s+(UNIQUE\s+)?INDEX\b", text, re.I):
                    concurrent = bool(re.search(r"\bINDEX\s+CONCURRENTLY\b", text, re.I))
                    what = repr(text[:60])
        if concurrent is False:
            found.append(f"line {call.lineno}: {what} without CONCURRENTLY")
        elif concurrent and call.lineno not in autocommit:
            found.append(f"line {call.lineno}: {what} CONCURRENTLY outside autocommit_block()")
    return found


# --- the scanner, on the real migrations and on examples ------------------------------


@pytest.mark.parametrize("path", _migrations(), ids=_revision)
def test_no_destructive_operation_outside_a_contract_phase(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    found = destructive_operations(source)
    constants = _constants(ast.parse(source))
    if constants.get("CONTRACT_PHASE") is True:
        expands = str(constants.get("EXPANDS", ""))
        earlier = {_revision(p) for p in _migrations() if _revision(p) < _revision(path)}
        assert expands in earlier, f"{path.name}: EXPANDS must name an earlier revision"
        return
    assert not found, (
        f"{path.name} is destructive: {found}. Split it: an expand migration that adds, a"
        " release whose code uses only the new shape, then a migration with"
        ' CONTRACT_PHASE = True and EXPANDS = "<expand revision>".'
    )


@pytest.mark.parametrize("path", _migrations(), ids=_revision)
def test_new_postgres_indexes_on_existing_tables_are_concurrent(path: Path) -> None:
    if _revision(path) <= RULE_SINCE:
        pytest.skip("released before the rule (see RULE_SINCE)")
    found = nonconcurrent_indexes(path.read_text(encoding="utf-8"))
    assert not found, (
        f"{path.name}: {found}. Use op.create_index(..., postgresql_concurrently=True)"
        " inside `with op.get_context().autocommit_block():`."
    )


def test_the_scanner_catches_destructive_operations() -> None:
    cases = {
        "op.drop_column('alerts', 'title')": "drop_column",
        "op.drop_table('alerts')": "drop_table",
        "op.rename_table('alerts', 'old_alerts')": "rename_table",
        "op.alter_column('alerts', 'title', type_=sa.String(10))": "alter_column",
        "op.alter_column('alerts', 'title', new_column_name='name')": "alter_column",
        "with op.batch_alter_table('alerts') as b:\n    b.drop_column('title')": "drop_column",
        "op.execute('ALTER TABLE alerts DROP COLUMN title')": "raw DROP",
        "op.execute(sa.text('ALTER TABLE alerts RENAME TO old'))": "raw RENAME",
        "op.execute('ALTER TABLE a ALTER COLUMN t TYPE varchar(5)')": "raw type change",
    }
    for source, what in cases.items():
        found = destructive_operations(source)
        assert found and what in found[0], (source, found)
    harmless = (
        "op.add_column('alerts', sa.Column('x', sa.Text()))\n"
        "op.alter_column('alerts', 'title', nullable=True)\n"
        "op.create_index('ix', 'alerts', ['x'])\n"
        "op.execute('CREATE POLICY p ON alerts USING (true)')\n"
    )
    assert destructive_operations(harmless) == []


CONCURRENT = """
def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_alerts_tenant_service", "alerts", ["tenant_id", "service"],
            postgresql_concurrently=True, if_not_exists=True,
        )
"""


def test_the_scanner_catches_blocking_indexes() -> None:
    assert nonconcurrent_indexes("op.create_index('ix', 'alerts', ['x'])")
    assert nonconcurrent_indexes("op.create_index('ix', table_name='alerts', columns=['x'])")
    assert not nonconcurrent_indexes(
        "def upgrade():\n    pass\ndef downgrade():\n    op.create_index('i', 'a', ['x'])"
    )
    assert nonconcurrent_indexes("op.execute('CREATE INDEX ix ON alerts (x)')")
    assert nonconcurrent_indexes("op.execute('create unique index if not exists ix ON a (x)')")
    outside = "op.create_index('ix', 'alerts', ['x'], postgresql_concurrently=True)"
    assert "outside autocommit_block" in nonconcurrent_indexes(outside)[0]
    raw_outside = "op.execute('CREATE INDEX CONCURRENTLY ix ON alerts (x)')"
    assert "outside autocommit_block" in nonconcurrent_indexes(raw_outside)[0]
    assert not nonconcurrent_indexes(CONCURRENT)
    assert not nonconcurrent_indexes(
        "with op.get_context().autocommit_block():\n"
        "    op.execute('CREATE INDEX CONCURRENTLY IF NOT EXISTS ix ON alerts (x)')"
    )
    assert not nonconcurrent_indexes(
        "op.create_table('fresh', sa.Column('x', sa.Text()))\nop.create_index('ix', 'fresh', ['x'])"
    )


def test_the_documented_pattern_is_in_the_operations_guide() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    body = CONCURRENT.strip().splitlines()[1:]
    assert all(line.strip() in guide for line in body if line.strip())


def _with_extra_migration(tmp_path: Path) -> Path:
    """The migrations, plus one after head that builds an index the documented way."""
    folder = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    head = _revision(_migrations()[-1])
    nxt = f"{int(head) + 1:04d}"
    extra = f"revision = {nxt!r}\ndown_revision = {head!r}\n\nfrom alembic import op\n"
    (folder / "versions" / f"{nxt}_concurrent_index.py").write_text(extra + CONCURRENT)
    return folder


def _upgrade_with(engine: sa.Engine, folder: Path) -> None:
    """What ``migrate.upgrade`` does, from another script folder."""
    with engine.connect() as connection:
        config = alembic_config(connection)
        config.set_main_option("script_location", str(folder))
        command.upgrade(config, "head")
        connection.commit()


def test_a_concurrent_index_migration_runs_through_migrate_on_postgres(
    tmp_path: Path, pg_server: PostgresServer, pg_database: str
) -> None:
    engine = sa.create_engine(pg_server.url(pg_database, OWNER))
    folder = _with_extra_migration(tmp_path)
    head = _revision(_migrations()[-1])
    try:
        _upgrade_with(engine, folder)
        # Interrupted after the index was built but before the version was written: the
        # re-run finds the index there and goes on.
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        _upgrade_with(engine, folder)
        with engine.connect() as conn:
            valid = conn.execute(
                sa.text(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE c.relname = 'ix_alerts_tenant_service'"
                )
            ).scalar_one()
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        assert valid is True
        assert version == f"{int(head) + 1:04d}"
    finally:
        engine.dispose()


def test_a_concurrent_index_migration_runs_on_sqlite(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    try:
        _upgrade_with(engine, _with_extra_migration(tmp_path))
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("alerts")}
        assert "ix_alerts_tenant_service" in indexes
    finally:
        engine.dispose()


# --- upgrades with data ----------------------------------------------------------------

EARLIER = [_revision(p) for p in _migrations()][:-1]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _value(column: sa.Column[Any], marker: str) -> Any:
    """A value of the column's Python type (the application's type where it knows the
    column: SQLite reflection sees only storage types)."""
    model = schema.metadata.tables.get(column.table.name)
    kind = model.c[column.name].type if model is not None and column.name in model.c else None
    kind = kind if kind is not None else column.type
    if isinstance(kind, sa.types.TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, sa.JSON):
        return {"kept": marker}
    try:
        python = kind.python_type
    except NotImplementedError:
        python = str
    if column.name == "status":
        return "firing"
    if column.name == "severity":
        return "critical"
    if python is bool:
        return True
    if python is int or python is float:
        return 7
    if python is datetime:
        return NOW
    if python is dict:
        return {"kept": marker}
    if python is list:
        return [marker]
    if python is bytes:
        return marker.encode()
    length = getattr(kind, "length", None) or getattr(column.type, "length", None)
    return marker[: min(length or 40, 40)]


def _populate(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """One row in every public table, every column filled; the rows as inserted."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    rows: dict[str, dict[str, Any]] = {}
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            # FTS5's virtual table and its shadow tables are written by triggers only.
            if table.name == "alembic_version" or table.name.startswith("incident_search_fts"):
                continue
            row = {c.name: _value(c, f"r-{c.name}") for c in table.columns}
            # Every foreign key points at the one row of its target.
            for fk in table.foreign_keys:
                row[fk.parent.name] = rows[fk.column.table.name][fk.column.name]
            model = schema.metadata.tables.get(table.name)
            target = model if model is not None else table
            columns = {c.name for c in target.columns}
            conn.execute(target.insert().values({k: v for k, v in row.items() if k in columns}))
            rows[table.name] = row
    return rows


def _read_back(engine: sa.Engine, rows: dict[str, dict[str, Any]]) -> None:
    metadata = sa.MetaData()
    metadata.reflect(engine)
    with engine.connect() as conn:
        for name, row in rows.items():
            assert name in metadata.tables, f"table {name} is gone"
            model = schema.metadata.tables.get(name)
            table = model if model is not None else metadata.tables[name]
            stored = conn.execute(sa.select(table)).mappings().all()
            assert len(stored) == 1, f"{name}: {len(stored)} rows"
            for column, put in row.items():
                assert column in stored[0], f"{name}.{column} is gone"
                got, value = stored[0][column], put
                if isinstance(value, datetime) and isinstance(got, datetime):
                    got, value = got.replace(tzinfo=None), value.replace(tzinfo=None)
                assert got == value, f"{name}.{column}: {got!r} != {value!r}"


def _upgrade(engine: sa.Engine, revision: str) -> None:
    with engine.connect() as connection:
        command.upgrade(alembic_config(connection), revision)
        connection.commit()


@pytest.mark.parametrize("revision", EARLIER)
def test_upgrade_keeps_data_on_sqlite(revision: str, tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    try:
        _upgrade(engine, revision)
        rows = _populate(engine)
        _upgrade(engine, "head")
        _read_back(engine, rows)
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("revision", EARLIER)
def test_upgrade_keeps_data_on_postgres(revision: str, pg_server: PostgresServer) -> None:
    name = f"dd0c_upgrade_{revision}"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = sa.create_engine(pg_server.url(name, OWNER))
    try:
        _upgrade(engine, revision)
        rows = _populate(engine)
        _upgrade(engine, "head")
        _read_back(engine, rows)
    finally:
        engine.dispose()
        pg_server.drop_database(name)


def _incident_with_alerts(conn: sa.Connection) -> None:
    """An incident of two alerts, as revision 0009 stored them."""
    i, a = schema.incidents, schema.alerts
    there = {c["name"] for c in sa.inspect(conn).get_columns("incidents")}
    incident = {c.name: _value(c, "x") for c in i.columns if c.name in there}
    conn.execute(
        i.insert().values(
            {**incident, "id": "inc-1", "tenant_id": "t1", "merged_into": None}
            | {"title": "Checkout Latency", "services": ["checkout", "payments-api"]}
        )
    )
    for hour, source in ((1, "grafana"), (5, "datadog")):
        conn.execute(
            schema.rollups_hourly.insert().values(
                tenant_id="t1",
                hour=NOW.replace(hour=hour, minute=0, second=0),
                service="checkout",
                source=source,
                severity="high",
                alerts=hour,
                incidents_opened=1,
                pages=0,
            )
        )
    for n, labels in enumerate(({"team": "Payments"}, {"team": "payments", "zone": "EU-1"})):
        alert = {c.name: _value(c, f"a{n}") for c in a.columns}
        conn.execute(
            a.insert().values(
                {**alert, "id": f"alert-{n}", "tenant_id": "t1", "incident_id": "inc-1"}
                | {"labels": labels, "status": "resolved"}
            )
        )


def _check_filled(engine: sa.Engine) -> None:
    s = schema.incident_search
    with engine.connect() as conn:
        [row] = conn.execute(sa.select(s.c.tenant_id, s.c.incident_id, s.c.text)).all()
        assert (row.tenant_id, row.incident_id) == ("t1", "inc-1")
        assert row.text.split("\x1e") == [
            "checkout latency\x1fcheckout\x1fpayments-api",
            "team\x1fpayments\x1fzone\x1feu-1",
        ]
        d = schema.rollups_daily
        daily = conn.execute(
            sa.select(d.c.day, d.c.dimension, d.c.value, d.c.alerts, d.c.incidents_opened)
        ).all()
        midnight = NOW.replace(hour=0, minute=0, second=0)
        assert {(r.day, r.dimension, r.value, r.alerts, r.incidents_opened) for r in daily} == {
            (midnight, "all", "", 6, 2),
            (midnight, "service", "checkout", 6, 2),
            (midnight, "severity", "high", 6, 2),
            (midnight, "source", "grafana", 1, 1),
            (midnight, "source", "datadog", 5, 1),
        }
        if engine.dialect.name == "sqlite":
            fts = "SELECT rowid FROM incident_search_fts WHERE text LIKE '%ments-a%'"
            assert conn.execute(sa.text(fts)).scalars().all() == [1]


def test_0010_fills_search_documents_on_sqlite(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    try:
        _upgrade(engine, "0009")
        with engine.begin() as conn:
            _incident_with_alerts(conn)
        _upgrade(engine, "head")
        _check_filled(engine)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_0010_fills_search_documents_and_indexes_them_on_postgres(
    pg_server: PostgresServer,
) -> None:
    name = "dd0c_upgrade_search"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = sa.create_engine(pg_server.url(name, OWNER))
    try:
        _upgrade(engine, "0009")
        with engine.begin() as conn:
            _incident_with_alerts(conn)
        _upgrade(engine, "head")
        _check_filled(engine)
        with engine.connect() as conn:
            indexes = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE tablename = 'incident_search'")
            ).scalars()
            assert any("gin_trgm_ops" in x for x in indexes)
    finally:
        engine.dispose()
        pg_server.drop_database(name)


def _fingerprint_counts(engine: sa.Engine) -> datetime:
    """Two days of daily fingerprint counts as revision 0011 stored them: two days ago
    (more fingerprints than a day's list keeps) and today (not complete: not listed)."""
    today = top_daily.completed_before(datetime.now(UTC))
    f = schema.rollups_fingerprint_daily
    with engine.begin() as conn:
        for day, many in ((today - timedelta(days=2), top_daily.K + 5), (today, 3)):
            conn.execute(
                f.insert(),
                [
                    {"tenant_id": "t1", "day": day, "fingerprint": f"fp-{n:03d}", "title": "x"}
                    | {"alerts": 1000 - n}
                    for n in range(many)
                ],
            )
    return today


def _check_listed(engine: sa.Engine, today: datetime) -> None:
    d = schema.rollups_top_daily
    with engine.connect() as conn:
        listed = conn.execute(sa.select(d.c.day, d.c.fingerprint, d.c.alerts)).all()
    assert {day for day, _, _ in listed} == {today - timedelta(days=2)}
    assert sorted(fp for _, fp, _ in listed) == [f"fp-{n:03d}" for n in range(top_daily.K)]
    # 0014: each listed fingerprint's count of that day, for ranking the candidates.
    assert all(alerts == 1000 - int(fp[3:]) for _, fp, alerts in listed)


def test_0012_lists_each_completed_days_top_fingerprints_on_sqlite(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    try:
        _upgrade(engine, "0011")
        today = _fingerprint_counts(engine)
        _upgrade(engine, "head")
        _check_listed(engine, today)
        indexes = {i["name"] for i in sa.inspect(engine).get_indexes("incidents")}
        assert {"ix_incidents_tenant_first_times", "ix_incidents_tenant_flapping"} <= indexes
    finally:
        engine.dispose()


@pytest.mark.slow
def test_0012_lists_top_fingerprints_and_indexes_them_on_postgres(
    pg_server: PostgresServer,
) -> None:
    name = "dd0c_upgrade_top_daily"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = sa.create_engine(pg_server.url(name, OWNER))
    try:
        _upgrade(engine, "0011")
        today = _fingerprint_counts(engine)
        _upgrade(engine, "head")
        _check_listed(engine, today)
        with engine.connect() as conn:
            indexes = conn.execute(
                sa.text("SELECT indexname FROM pg_indexes WHERE tablename = :t"),
                {"t": "rollups_fingerprint_daily"},
            ).scalars()
            assert "ix_rollups_fingerprint_daily_fp" in set(indexes)
            valid = conn.execute(  # 0014's, built CONCURRENTLY, usable
                sa.text(
                    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                    " WHERE i.indisvalid AND c.relname LIKE 'ix_incidents_tenant_f%'"
                )
            ).scalars()
            assert {"ix_incidents_tenant_first_times", "ix_incidents_tenant_flapping"} <= set(valid)
    finally:
        engine.dispose()
        pg_server.drop_database(name)


def _incidents_at_0020(engine: sa.Engine) -> None:
    """As revision 0020 stored them: tenant t1 has a route with quiet hours, t2 one
    without; open, paged, never-announced incidents of both, and of t1 others that
    were acknowledged, merged, resolved, not paged, or announced."""
    i, r, d = schema.incidents, schema.routes, schema.deliveries
    with engine.begin() as conn:
        for tenant, definition in (("t1", {"quiet_hours": "sat,sun 00:00-24:00"}), ("t2", {})):
            route = {c.name: _value(c, f"{tenant}-route") for c in r.columns}
            route |= {"id": f"route-{tenant}", "tenant_id": tenant}
            conn.execute(r.insert().values({**route, "definition": {"name": "t", **definition}}))
        cases = {
            "held": {},
            "acked": {"status": "acknowledged", "acknowledged_at": NOW},
            "merged": {"merged_into": "t1-held"},
            "resolved": {"status": "resolved"},
            "unpaged": {"paged": False},
            "announced": {},
        }
        for tenant in ("t1", "t2"):
            for name, changed in cases.items():
                incident = {c.name: _value(c, f"{tenant}-{name}") for c in i.columns}
                fields = {"id": f"{tenant}-{name}", "tenant_id": tenant, "status": "open"}
                fields |= {"paged": True, "acknowledged_at": None, "merged_into": None}
                conn.execute(i.insert().values({**incident, **fields, **changed}))
        delivery = {c.name: _value(c, "d") for c in d.columns}
        delivery |= {"id": "d1", "tenant_id": "t1", "incident_id": "t1-announced"}
        conn.execute(d.insert().values({**delivery, "kind": "message"}))


def _held_after_upgrade(engine: sa.Engine) -> None:
    h = schema.held_pages
    with engine.connect() as conn:
        rows = conn.execute(sa.select(h.c.tenant_id, h.c.incident_id, h.c.event)).all()
    assert [tuple(row) for row in rows] == [("t1", "t1-held", "opened")]


def test_0021_records_the_pages_held_before_it_on_sqlite(tmp_path: Path) -> None:
    """Pages the previous release held (it kept no record) are recorded, so they are
    sent when nothing holds them any more, not lost with the upgrade."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    try:
        _upgrade(engine, "0020")
        _incidents_at_0020(engine)
        _upgrade(engine, "head")
        _held_after_upgrade(engine)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_0021_records_the_pages_held_before_it_on_postgres(pg_server: PostgresServer) -> None:
    name = "dd0c_upgrade_held_pages"
    pg_server.drop_database(name)
    pg_server.create_database(name)
    engine = sa.create_engine(pg_server.url(name, OWNER))
    try:
        _upgrade(engine, "0020")
        _incidents_at_0020(engine)
        _upgrade(engine, "head")
        _held_after_upgrade(engine)
    finally:
        engine.dispose()
        pg_server.drop_database(name)
