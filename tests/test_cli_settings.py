"""Bad configuration: every command refuses it at start with one line per problem,
naming the environment variable, and exit code 2 (a usage error), never a traceback
or a service that starts and then answers every request with an error."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import embedded_data_dir
from dd0c_alert.app import build_runtime
from dd0c_alert.cli import app
from dd0c_alert.config import Settings
from dd0c_alert.storage.unusable import check_database_present, unusable_storage

runner = CliRunner()


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return embedded_data_dir(tmp_path, monkeypatch)


def refused(monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> list[str]:
    """The lines a command prints when the environment holds ``env``."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return result.output.splitlines()


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DD0C_MAX_BODY_BYTES", "abc", "valid integer"),
        ("DD0C_SQLITE_SYNCHRONOUS", "bogus", "'FULL' or 'NORMAL'"),
        ("DD0C_DIGEST_HOUR", "99", "less than or equal to 23"),
        ("DD0C_SMTP_TLS", "maybe", "'none', 'starttls' or 'tls'"),
        ("DD0C_TRUSTED_PROXIES", "10.0.0.0/8, caddy", "'caddy' is not an address or a network"),
        ("DD0C_SECRET_KEY", "notakey", "not a Fernet key"),
        ("GOVERNANCE_MODE", "enforce", "'audit' or 'strict'"),
    ],
)
def test_a_bad_value_is_one_line_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, says: str
) -> None:
    lines = refused(monkeypatch, "tenant", "list", **{variable: value})
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: {variable}: ")
    assert says in lines[0]


def test_a_secret_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    (line,) = refused(monkeypatch, "tenant", "list", DD0C_SECRET_KEY="hunter2-not-a-key")
    assert "hunter2" not in line


def test_a_data_dir_that_is_a_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    (line,) = refused(monkeypatch, "doctor", DD0C_DATA_DIR=str(file))
    assert line == f"error: DD0C_DATA_DIR: {file} is a file, not a folder"


def test_every_problem_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = refused(
        monkeypatch,
        "integration",
        "list",
        "--tenant",
        "t",
        DD0C_MAX_BODY_BYTES="x",
        DD0C_DIGEST_HOUR="24",
    )
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "DD0C_DIGEST_HOUR",
        "DD0C_MAX_BODY_BYTES",
    ]


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DD0C_MAX_BODY_BYTES", "-5"),  # every webhook answered 413
        ("DD0C_MAX_CONNECTIONS", "0"),  # every request, /healthz too, answered 503
        ("DD0C_HTTP_BODY_TIMEOUT_SECONDS", "nan"),  # /healthz answered 500
        ("DD0C_HTTP_HEADER_TIMEOUT_SECONDS", "inf"),
        ("DD0C_WORKER_BATCH_SIZE", "0"),
        ("DD0C_WORKER_POLL_SECONDS", "-1"),
        ("DD0C_NOTIFY_MAX_ATTEMPTS", "0"),
        ("DD0C_SMTP_PORT", "70000"),
        ("DD0C_RETENTION_DAYS", "-1"),
        ("DD0C_LOG_LEVEL", "loud"),
    ],
)
def test_a_value_that_would_break_the_service_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    (line,) = refused(monkeypatch, "tenant", "list", **{variable: value})
    assert line.startswith(f"error: {variable}: ")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DD0C_RETENTION_DAYS", "0"),  # keeps everything
        ("DD0C_RATE_LIMIT_PER_SECOND", "0"),  # disables the limit
        ("DD0C_SUGGEST_INTERVAL_SECONDS", "0"),  # disables the job
        ("DD0C_DIGEST_HOUR", "-1"),  # no digest
        ("DD0C_HTTP_BODY_TIMEOUT_SECONDS", "1"),
        ("DD0C_LOG_LEVEL", "WARNING"),
    ],
)
def test_documented_special_values_are_still_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["tenant", "list"])
    assert result.exit_code == 0, result.output


# --- storage that cannot be used: one line, through the real entry point ----------------


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dd0c_alert`` (the console script's ``main``), as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
    env.pop("DATABASE_URL", None)
    env |= {"DD0C_DATA_DIR": str(data_dir), "DD0C_SUGGEST_INTERVAL_SECONDS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "dd0c_alert", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _damaged(data_dir: Path, name: str) -> None:
    """A folder in use, then one of its SQLite files cut in half (a bad restore, a
    disk that lost the end of a file)."""
    assert _run(data_dir, "tenant", "create", "acme").returncode == 0
    build_runtime(Settings(data_dir=data_dir, secret_key=""), roles=frozenset({"ingest"})).stop()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"{name}{suffix}").unlink(missing_ok=True)
    path = data_dir / name
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("dd0c.db", ("serve", "--port", "0")),
        ("dd0c-queue.db", ("serve", "--port", "0")),
        ("dd0c.db", ("dlq", "list", "--tenant", "x")),
    ],
)
def test_a_damaged_database_is_one_line_not_a_traceback(
    data_dir: Path, name: str, command: tuple[str, ...]
) -> None:
    _damaged(data_dir, name)
    result = _run(data_dir, *command)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "─" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    assert "is damaged (" in errors[0] and "dd0c-alert restore" in errors[0]


def _lost(data_dir: Path, how: str) -> None:
    """A folder in use (its queue file and keys there), then its database gone: a
    volume mounted or a copy made without it (``missing``), or cut to nothing (``empty``)."""
    assert _run(data_dir, "tenant", "create", "acme").returncode == 0
    build_runtime(Settings(data_dir=data_dir, secret_key=""), roles=frozenset({"ingest"})).stop()
    for suffix in ("-wal", "-shm"):
        (data_dir / f"dd0c.db{suffix}").unlink(missing_ok=True)
    if how == "missing":
        (data_dir / "dd0c.db").unlink()
    else:
        (data_dir / "dd0c.db").write_bytes(b"")


@pytest.mark.parametrize(
    ("how", "command"),
    [
        ("missing", ("serve", "--port", "0")),
        ("empty", ("serve", "--port", "0")),
        ("missing", ("dlq", "list", "--tenant", "x")),
        ("empty", ("tenant", "list")),
    ],
)
def test_a_lost_database_in_a_folder_in_use_is_refused_not_started_empty(
    data_dir: Path, how: str, command: tuple[str, ...]
) -> None:
    _lost(data_dir, how)
    result = _run(data_dir, *command)
    assert result.returncode == 1, result.stderr + result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    state = "is missing" if how == "missing" else "is empty (0 bytes)"
    assert f"dd0c.db {state}, but {data_dir} was in use" in errors[0]
    assert "dd0c-queue.db" in errors[0] and "secret.key" in errors[0]
    assert "dd0c-alert restore" in errors[0] and "docs/operations.md" in errors[0]
    # Nothing was created in its place: the restore finds the folder as it was.
    database = data_dir / "dd0c.db"
    assert not database.exists() if how == "missing" else database.stat().st_size == 0


def test_a_new_folder_and_one_with_only_a_fresh_wal_still_start(data_dir: Path) -> None:
    assert _run(data_dir / "new", "tenant", "create", "acme").returncode == 0
    # Until SQLite's first checkpoint a new database can live in its WAL alone.
    _lost(data_dir / "wal", "empty")
    (data_dir / "wal" / "dd0c.db-wal").write_bytes(b"\0" * 32)
    check_database_present(
        data_dir / "wal" / "dd0c.db", data_dir / "wal" / "dd0c-queue.db", data_dir / "wal"
    )


def test_a_folder_that_refuses_writes_is_named_with_the_fix() -> None:
    refused = OSError(errno.EROFS, "Read-only file system", "/srv/dd0c/dd0c.db")
    said = unusable_storage(refused)
    assert said is not None
    assert "/srv/dd0c/dd0c.db: Read-only file system" in said
    assert "writable" in said
    # Not every OSError is the storage's: a refused connection (demo) stays an error.
    assert unusable_storage(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) is None
    assert unusable_storage(ValueError("a bug")) is None
