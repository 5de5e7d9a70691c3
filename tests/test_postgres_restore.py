"""The PostgreSQL restore drill of docs/operations.md, run exactly as documented: the
shell blocks are read from the page and run by bash against a real PostgreSQL while a
storm is being ingested. The restored database then serves the application: every
webhook answered 202 before the dump began is there (stored, or still queued and
processed after the restore), every alert of every restored incident is present with
its raw payload, integration secrets still verify, and row-level security, its
policies, functions and the application role's rights are as they were."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from conftest import drain
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import AlertFilter, IncidentFilter
from dd0c_alert.web.app import create_app
from servers import APP, OWNER, PG_BIN, PostgresServer, free_port
from webhook_helpers import auth_headers

PAGE = Path(__file__).parent.parent / "docs" / "operations.md"
RESTORED = "dd0c_restored_drill"
KEY = Fernet.generate_key().decode()


def documented(step: str) -> str:
    """The ```sh block that follows ``<!-- drill: step -->`` in docs/operations.md."""
    found = re.search(rf"<!-- drill: {step} -->\n```sh\n(.*?)```", PAGE.read_text(), re.S)
    assert found, f"docs/operations.md has no '{step}' drill block"
    return found.group(1)


def run_documented(step: str, cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", documented(step)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"{step}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def settings_for(url: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=url,
        data_dir=data_dir,
        secret_key=KEY,
        jwt_secret="restore-drill-" + "j" * 32,
        worker_poll_seconds=0.02,
        suggest_interval_seconds=0,
    )


class Storm:
    """Custom alerts for two tenants, sent until stopped; remembers what was answered
    202 and when."""

    def __init__(self, client: TestClient, targets: list[tuple[str, str]]) -> None:
        self.client, self.targets = client, targets
        self.accepted: list[tuple[float, str, str]] = []  # (time, tenant, title)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send)

    def _send(self) -> None:
        n = 0
        while not self.stop.is_set():
            tenant, integration = self.targets[n % len(self.targets)]
            titles = [f"t{n}-{k}" for k in range(5)]
            body = orjson.dumps([{"title": t, "service": f"svc-{n % 5}"} for t in titles])
            headers = {"Content-Type": "application/json"}
            headers |= auth_headers("custom", body, "drill-secret", {})
            url = f"/v1/wh/{tenant}/custom/{integration}"
            assert self.client.post(url, content=body, headers=headers).status_code == 202
            now = time.monotonic()
            self.accepted += [(now, tenant, title) for title in titles]
            n += 1


def _all_alerts(runtime: Runtime, tenant: str) -> list[dict[str, Any]]:
    alerts, cursor = [], None
    while True:
        page = runtime.store.list_alerts(tenant, AlertFilter(), 500, cursor)
        alerts += page.items
        cursor = page.next_cursor
        if not cursor:
            return alerts


def _security_shape(engine: sa.Engine) -> dict[str, set[tuple[Any, ...]]]:
    """What row-level security and the role split consist of, to compare two databases."""
    queries = {
        "rls": "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
        "policies": "SELECT tablename, policyname, roles::text, cmd, qual, with_check"
        " FROM pg_policies",
        "definer functions": "SELECT proname, pg_get_userbyid(proowner) FROM pg_proc"
        " WHERE prosecdef AND pronamespace = 'public'::regnamespace",
        "app grants": "SELECT table_schema, table_name, privilege_type"
        f" FROM information_schema.role_table_grants WHERE grantee = '{APP}'",
        "owners": "SELECT n.nspname, c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'pgmq')",
    }
    with engine.connect() as conn:
        return {name: set(map(tuple, conn.execute(sa.text(q)))) for name, q in queries.items()}


def test_a_dump_taken_during_a_storm_restores_with_rls_intact(
    tmp_path: Path, pg_server: PostgresServer, pg_database: str
) -> None:
    live = settings_for(pg_server.url(pg_database, APP), tmp_path / "live")
    runtime = build_runtime(live)
    targets = []
    for name in ("acme", "globex"):
        tenant = runtime.store.create_tenant(name).id
        targets.append(
            (tenant, runtime.store.create_integration(tenant, "custom", "c", "drill-secret").id)
        )
    tools = f"{PG_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "DATABASE_URL"))}
    env |= {"PATH": tools, "DD0C_SECRET_KEY": KEY, "DD0C_JWT_SECRET": live.jwt_secret}
    env |= {"DD0C_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/"}  # no waiting on Slack

    pg_server.drop_database(RESTORED)
    with TestClient(create_app(runtime)) as client:
        storm = Storm(client, targets)
        storm.thread.start()
        try:
            while len(storm.accepted) < 200:
                time.sleep(0.02)
            started = time.monotonic()
            run_documented("dump", tmp_path, env | {"OWNER_URL": pg_server.dsn(pg_database, OWNER)})
            # The archive is copied after the dump, as documented (in-flight temporary
            # files skipped: one may be renamed away mid-copy); the storm goes on.
            shutil.copytree(
                live.archive_dir,
                tmp_path / "restored" / "archive",
                ignore=shutil.ignore_patterns(".*.tmp"),
            )
        finally:
            storm.stop.set()
            storm.thread.join()
    before = {(tenant, title) for at, tenant, title in storm.accepted if at < started}
    assert len(before) >= 200 and len(storm.accepted) > len(before)

    env |= {
        "ADMIN_URL": pg_server.dsn("postgres", "postgres"),
        "RESTORED_DB": RESTORED,
        "RESTORED_OWNER_URL": pg_server.dsn(RESTORED, OWNER),
        "RESTORED_APP_URL": pg_server.dsn(RESTORED, APP),
        "DD0C_DATA_DIR": str(tmp_path / "restored"),
    }
    try:
        doctor = run_documented("restore", tmp_path, env)
        assert f"ok    row-level security: {APP} cannot bypass it" in doctor, doctor
        assert "ok    migrations" in doctor, doctor
        source = sa.create_engine(pg_server.url(pg_database, OWNER))
        copy = sa.create_engine(pg_server.url(RESTORED, OWNER))
        try:
            assert _security_shape(copy) == _security_shape(source)
        finally:
            source.dispose()
            copy.dispose()
        _serve_the_restored_database(
            settings_for(pg_server.url(RESTORED, APP), tmp_path / "restored"), targets, before
        )
        _the_app_role_cannot_see_past_rls(pg_server, [tenant for tenant, _ in targets])
    finally:
        pg_server.drop_database(RESTORED)


def _serve_the_restored_database(
    settings: Settings, targets: list[tuple[str, str]], before: set[tuple[str, str]]
) -> None:
    restored = build_runtime(settings)
    with TestClient(create_app(restored)) as client:
        drain(restored, timeout=30)  # events still queued at the dump are processed now
        for tenant, integration in targets:
            alerts = _all_alerts(restored, tenant)
            titles = {a["title"] for a in alerts}
            missing = {title for t, title in before if t == tenant} - titles
            assert not missing, f"{len(missing)} alerts answered 202 before the dump are gone"
            incidents = restored.store.list_incidents(tenant, IncidentFilter(), 500, None).items
            assert incidents
            for incident in incidents:
                held = [a for a in alerts if a["incident_id"] == incident["id"]]
                assert len(held) == incident["alert_count"], incident["id"]
            for alert in alerts[:: max(1, len(alerts) // 40)]:
                assert restored.archive.get(alert["raw_ref"]), alert["raw_ref"]
            # The integration's secret decrypts with the same key: senders keep working.
            body = b'{"title": "after the restore"}'
            headers = auth_headers("custom", body, "drill-secret", {})
            sent = client.post(
                f"/v1/wh/{tenant}/custom/{integration}", content=body, headers=headers
            )
            assert sent.status_code == 202, sent.text


def _the_app_role_cannot_see_past_rls(pg_server: PostgresServer, tenants: list[str]) -> None:
    with pg_server.connect(RESTORED, APP) as conn:
        role = conn.execute(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False)
        assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)  # no tenant set
        counts = []
        for tenant in tenants:
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))
                mine = conn.execute("SELECT count(*), count(DISTINCT tenant_id) FROM alerts")
                counts.append(mine.fetchone())
        assert all(n > 0 and distinct == 1 for n, distinct in counts), counts
        for forbidden in (
            "ALTER TABLE alerts DISABLE ROW LEVEL SECURITY",
            "SET row_security = off; SELECT * FROM alerts",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)
