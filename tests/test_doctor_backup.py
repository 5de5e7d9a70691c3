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

from conftest import unwritable_folder
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.backup import backup
from dd0c_alert.storage.migrate import alembic_config, schema_behind
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


def _restored_without_its_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An installation with an integration, backed up, and restored into a new folder
    with the backup's secret.key kept apart (as docs/operations.md advises)."""
    source, copy, restored = tmp_path / "source", tmp_path / "copy", tmp_path / "restored"
    runner = CliRunner()
    monkeypatch.setenv("DD0C_DATA_DIR", str(source))
    created = runner.invoke(app, ["tenant", "create", "acme", "--json"])
    tenant = orjson.loads(created.output)["tenant_id"]
    made = runner.invoke(app, ["integration", "create", "--tenant", tenant, "--provider", "custom"])
    assert made.exit_code == 0, made.output
    assert runner.invoke(app, ["backup", str(copy)]).exit_code == 0
    (copy / "secret.key").unlink()
    monkeypatch.setenv("DD0C_DATA_DIR", str(restored))
    assert runner.invoke(app, ["restore", str(copy)]).exit_code == 0
    return restored


def test_a_restore_without_its_secret_key_fails_the_doctor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`serve` refuses to start without the key; the doctor said every check was ok."""
    restored = _restored_without_its_key(monkeypatch, tmp_path)
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(restored))
    assert code == 1, out
    assert f"fail  secret key: {restored / 'secret.key'} is missing" in out
    assert "put the secret.key of the backup in DD0C_DATA_DIR" in out
    assert not (restored / "secret.key").exists()  # the doctor made no new key


def test_a_secret_key_that_cannot_read_the_stored_secrets_fails_the_doctor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Another key (a new folder's own, a DD0C_SECRET_KEY from elsewhere): every
    webhook was answered 503 while the doctor said every check was ok."""
    restored = _restored_without_its_key(monkeypatch, tmp_path)
    (restored / "secret.key").write_bytes(Fernet.generate_key())
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(restored))
    assert code == 1, out
    assert f"fail  secret key: {restored / 'secret.key'} cannot decrypt" in out
    other = Fernet.generate_key().decode()
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(restored), DD0C_SECRET_KEY=other)
    assert code == 1 and "fail  secret key: DD0C_SECRET_KEY cannot decrypt" in out, out


def test_the_right_secret_key_passes_the_doctor(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    restored = _restored_without_its_key(monkeypatch, tmp_path)
    (restored / "secret.key").write_bytes((tmp_path / "source" / "secret.key").read_bytes())
    _, out = doctor(monkeypatch, DD0C_DATA_DIR=str(restored))
    assert "ok    secret key: decrypts the stored secrets" in out, out


def test_a_secret_key_from_elsewhere_fails_the_doctor_on_postgresql(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_server: PostgresServer, pg_database: str
) -> None:
    """Row-level security hid every integration from the application role, so with
    a DD0C_SECRET_KEY from elsewhere the doctor found no secret to try and said every
    check was ok, while every role's /readyz failed and every webhook was refused."""
    stored_with = Fernet.generate_key().decode()
    url = pg_server.dsn(pg_database, APP)
    settings = Settings(data_dir=tmp_path / "data", database_url=url, jwt_secret="j" * 32)
    store = build_runtime(settings.model_copy(update={"secret_key": stored_with})).store
    tenant = store.create_tenant("acme").id
    store.create_integration(tenant, "alertmanager", "am", SECRET)
    store.close()
    env = {"DD0C_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": url}
    code, out = doctor(monkeypatch, **env, DD0C_SECRET_KEY=Fernet.generate_key().decode())
    assert code == 1 and "fail  secret key: DD0C_SECRET_KEY cannot decrypt" in out, out
    assert "fix: set DD0C_SECRET_KEY, in every process, to the key" in out, out
    code, out = doctor(monkeypatch, **env, DD0C_SECRET_KEY=stored_with)
    assert "ok    secret key: decrypts the stored secrets" in out, out


def test_a_full_disk_under_the_archive_says_to_free_space(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A full disk was told to fix the folder's permissions. The probe's file is made a
    link to /dev/full, whose every write fails with ENOSPC, as on a full disk."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / ".doctor-probe").symlink_to("/dev/full")
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1
    assert f"fail  archive: cannot write {archive}: No space left on device" in out
    assert "fix: free space on its disk" in out and "write access" not in out
    assert not (archive / ".doctor-probe").is_symlink()  # the doctor leaves nothing


def test_a_read_only_data_folder_fails_its_check_and_the_others_still_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The doctor printed one line, `cannot write …dd0c.db: Read-only file system`, and
    none of its checks: the database was opened for writing first."""
    _in_use_folder(monkeypatch, tmp_path)
    with unwritable_folder(tmp_path):
        code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1, out
    assert f"fail  data folder: cannot write {tmp_path}" in out
    assert "ok    configuration" in out and "ok    database: sqlite" in out
    assert "ok    migrations" in out and "ok    queue" in out
    assert "ok    secret key: decrypts the stored secrets" in out
    assert not list(tmp_path.glob(".write-probe*"))


def _in_use_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("DD0C_SECRET_KEY", raising=False)
    monkeypatch.setenv("DD0C_DATA_DIR", str(tmp_path))
    created = CliRunner().invoke(app, ["tenant", "create", "acme", "--json"])
    tenant = orjson.loads(created.output)["tenant_id"]
    made = CliRunner().invoke(
        app, ["integration", "create", "--tenant", tenant, "--provider", "custom"]
    )
    assert made.exit_code == 0, made.output
    assert (tmp_path / "secret.key").exists()
    return tmp_path / "dd0c.db"


def test_migrate_refuses_to_make_a_lost_database_anew(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every command refused a folder in use whose dd0c.db is gone, except `migrate`,
    which made a new, empty installation of it."""
    database = _in_use_folder(monkeypatch, tmp_path)
    for lost in tmp_path.glob("dd0c.db*"):  # `rm dd0c.db*`
        lost.unlink()
    result = CliRunner().invoke(app, ["migrate"])
    assert result.exit_code == 1
    assert "is missing" in str(result.exception)
    assert not database.exists()


def test_a_database_made_anew_under_a_running_server_is_named_lost(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """dd0c.db deleted under a running server: its next connection makes a 4 KiB file
    without a table. The doctor and /readyz said `run dd0c-alert migrate`, which made
    it a new, empty installation under the server."""
    database = _in_use_folder(monkeypatch, tmp_path)
    for lost in tmp_path.glob("dd0c.db*"):  # `rm dd0c.db*`
        lost.unlink()
    anew = sqlite3.connect(database)
    anew.execute("PRAGMA journal_mode = wal")  # what a server's connection does
    anew.close()
    assert database.stat().st_size > 0
    code, out = doctor(monkeypatch, DD0C_DATA_DIR=str(tmp_path))
    assert code == 1
    assert f"fail  database: the database {database} holds no tables" in out
    assert "dd0c-alert restore" in out and "run: dd0c-alert migrate" not in out
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            why = schema_behind(conn)
    finally:
        engine.dispose()
    assert why is not None and "deleted or replaced under the running server" in why
    assert "restore" in why and "run dd0c-alert migrate" not in why
