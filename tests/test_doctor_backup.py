"""``dd0c-alert doctor`` names each problem with its fix; ``backup`` taken while a
storm is ingested restores to a consistent state."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.backup import backup
from dd0c_alert.storage.migrate import alembic_config
from dd0c_alert.storage.ports import AlertFilter, IncidentFilter
from servers import APP, OWNER, PostgresServer, free_port
from webhook_helpers import auth_headers

CLI = Path(sys.executable).parent / "dd0c-alert"
SECRET = "backup-secret"


def doctor(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[int, str]:
    for name in ("DATABASE_URL", "DD0C_DATABASE_URL", "REDIS_URL", "DD0C_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["doctor"])
    return result.exit_code, result.output


def test_a_wrong_database_url_fails_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out = doctor(
        monkeypatch,
        DD0C_DATA_DIR=str(tmp_path),
        DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/none",
        DD0C_SECRET_KEY=Fernet.generate_key().decode(),
    )
    assert code == 1
    assert "fail  database: cannot connect" in out and "fix: check DATABASE_URL" in out


def test_a_damaged_sqlite_database_fails_with_the_restore_as_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "dd0c.db").write_bytes(b"not a database, whatever its name says" * 100)
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1
    assert "fail  database: cannot connect: file is not a database" in out
    assert "dd0c-alert restore" in out and "DATABASE_URL" not in out


def test_a_lost_sqlite_database_fails_with_the_restore_as_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "dd0c-queue.db").write_bytes(b"a queue file in use" * 100)
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1
    assert f"fail  database: the database {tmp_path / 'dd0c.db'} is missing" in out
    assert "dd0c-alert restore" in out and "DATABASE_URL" not in out
    assert not (tmp_path / "dd0c.db").exists()


def test_a_missing_migration_fails_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'dd0c.db'}")
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0006")
        conn.commit()
    engine.dispose()
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1
    assert "fail  migrations: the schema is at 0006" in out
    assert "fix: run: dd0c-alert migrate" in out


def test_an_app_role_that_can_bypass_row_level_security_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PostgresServer, pg_database: str
) -> None:
    key = Fernet.generate_key().decode()
    as_owner = pg_server.dsn(pg_database, OWNER)
    code, out = doctor(
        monkeypatch, DD0C_DATA_DIR=str(tmp_path), DATABASE_URL=as_owner, DD0C_SECRET_KEY=key
    )
    assert code == 1
    assert "fail  row-level security" in out and "owns" in out and "dd0c_app" in out
    as_app = pg_server.dsn(pg_database, APP)
    code, out = doctor(
        monkeypatch, DD0C_DATA_DIR=str(tmp_path), DATABASE_URL=as_app, DD0C_SECRET_KEY=key
    )
    assert "ok    row-level security" in out and "ok    migrations" in out, out


def test_an_unreachable_redis_fails_with_its_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, out = doctor(
        monkeypatch, DD0C_DATA_DIR=str(tmp_path), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"
    )
    assert code == 1
    assert "fail  redis: cannot reach REDIS_URL" in out and "fix: start Redis" in out


def _incident_count(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM incidents").fetchone()[0])


def test_a_backup_taken_during_a_storm_restores_consistently(tmp_path: Path) -> None:
    data = tmp_path / "live"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DD0C_", "DATABASE_URL"))}
    env |= {"DD0C_DATA_DIR": str(data), "DD0C_SUGGEST_INTERVAL_SECONDS": "0"}
    setup = build_runtime(Settings(data_dir=data, secret_key=""), roles=frozenset())
    tenant = setup.store.create_tenant("acme")
    integration = setup.store.create_integration(tenant.id, "custom", "c", SECRET).id
    setup.stop()
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.05)
        stop = threading.Event()

        def storm() -> None:
            url = f"{base}/v1/wh/{tenant.id}/custom/{integration}"
            with httpx.Client(timeout=10) as client:
                n = 0
                while not stop.is_set():
                    body = orjson.dumps(
                        [{"title": f"a{n}-{k}", "service": f"svc-{n % 7}"} for k in range(20)]
                    )
                    headers = {"Content-Type": "application/json"}
                    headers |= auth_headers("custom", body, SECRET, {})
                    assert client.post(url, content=body, headers=headers).status_code == 202
                    n += 1

        sender = threading.Thread(target=storm)
        sender.start()
        # Mid-storm means after the worker's first commits: on a loaded machine the
        # background process can take longer than a fixed pause to start.
        deadline = time.monotonic() + 60
        while not _incident_count(data / "dd0c.db"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        time.sleep(1)
        result = subprocess.run(
            [str(CLI), "backup", str(tmp_path / "copy")],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        time.sleep(1)
        stop.set()
        sender.join()
    finally:
        server.terminate()
        server.wait(timeout=20)
    restored = tmp_path / "restored"
    renv = env | {"DD0C_DATA_DIR": str(restored)}
    restore = [str(CLI), "restore", str(tmp_path / "copy")]
    assert subprocess.run(restore, env=renv, check=False).returncode == 0
    assert (restored / "dd0c.db").stat().st_mode & 0o777 == 0o600
    runtime = build_runtime(Settings(data_dir=restored, secret_key=""), roles=frozenset())
    try:
        incidents = runtime.store.list_incidents(tenant.id, IncidentFilter(), 500, None).items
        alerts, cursor = [], None
        while True:
            page = runtime.store.list_alerts(tenant.id, AlertFilter(), 500, cursor)
            alerts += page.items
            cursor = page.next_cursor
            if not cursor:
                break
        assert incidents and alerts
        for incident in incidents:  # every alert of a restored incident is there
            held = [a for a in alerts if a["incident_id"] == incident["id"]]
            assert len(held) == incident["alert_count"], incident["id"]
        for alert in alerts[:: max(1, len(alerts) // 50)]:  # and its raw payload
            assert runtime.archive.get(alert["raw_ref"])
    finally:
        runtime.stop()


def test_a_backup_leaves_out_archive_writes_in_flight(tmp_path: Path) -> None:
    """A ``.<name>.<pid>.tmp`` file is a payload segment being written: half a file,
    renamed into place when complete. The backup copies the segments, not those."""
    data = tmp_path / "live"
    day = data / "archive" / "tenant" / "2026" / "12" / "06"
    day.mkdir(parents=True)
    (day / "a.seg.json").write_bytes(b"{}")
    (day / ".b.seg.json.4242.tmp").write_bytes(b'{"half')
    sqlite3.connect(data / "dd0c.db").close()
    copied = backup(data / "dd0c.db", data / "archive", data, tmp_path / "copy")
    archive = tmp_path / "copy" / "archive"
    assert [p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file()] == [
        "tenant/2026/12/06/a.seg.json"
    ]
    assert copied.archive_files == 1
