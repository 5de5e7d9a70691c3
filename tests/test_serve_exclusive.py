"""One server per data folder: a second ``serve`` (or ``ingest``) of the folder and a
``restore`` into it are refused while a server runs, naming it; a crashed server's
leftovers block nothing. The listening banner is printed only once the port is bound.
``backup`` into a folder that is not empty is a usage error."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import dd0c_alert.cli as cli_module
from conftest import embedded_data_dir, unwritable_folder
from dd0c_alert import logs
from dd0c_alert.cli import app
from dd0c_alert.local_server import LOCK, NOTE, recorded
from servers import free_port
from test_durability import CLI, Deployment, deployment, serve

__all__ = ["deployment"]  # the fixture, imported for its use here

runner = CliRunner()


class Started(Exception):
    """Raised instead of building the runtime: the command got past every check."""


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return embedded_data_dir(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def logs_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server command points the logs at its stderr, which CliRunner closes after
    the command: later tests' worker threads then fail on every log line."""
    monkeypatch.setattr(logs, "configure", lambda level: None)


@pytest.fixture
def no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server command stops where it would open the queue (and release its leases)."""

    def refuse(*_: object, **__: object) -> None:
        raise Started

    monkeypatch.setattr(cli_module, "build_runtime", refuse)


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def banner_logged(capfd: pytest.CaptureFixture[str]) -> bool:
    """Whether the server logged its ``listening`` line (on the process's stderr, which
    the CLI runner's output does not hold; plain structlog here, JSON in a server)."""
    return "listening" in capfd.readouterr().err


def flat(text: str) -> str:
    """Error text without the rich box drawing and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_a_second_server_of_the_folder_is_refused_before_it_touches_the_queue(
    data_dir: Path, no_runtime: None, capfd: pytest.CaptureFixture[str]
) -> None:
    with recorded(data_dir, "127.0.0.1", 9000):  # the first server
        result = cli("ingest", "--port", str(free_port()))
        assert result.exit_code == 2, result.output
        assert not isinstance(result.exception, Started)
        assert f"running on http://127.0.0.1:9000 (pid {os.getpid()})" in result.output
        assert not banner_logged(capfd)
        assert json.loads((data_dir / NOTE).read_text())["pid"] == os.getpid()


def test_a_crashed_servers_leftovers_do_not_block_a_restart(
    data_dir: Path, no_runtime: None
) -> None:
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    data_dir.mkdir()
    (data_dir / NOTE).write_text(
        json.dumps({"url": "http://127.0.0.1:9000", "pid": int(gone.stdout)})
    )
    (data_dir / LOCK).write_text("")  # a lock file nobody holds
    result = cli("ingest", "--port", str(free_port()))
    assert isinstance(result.exception, Started), result.output


def test_the_lock_is_held_across_processes_and_dropped_when_its_holder_dies(
    data_dir: Path,
) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path\n"
            "from dd0c_alert.local_server import recorded\n"
            "with recorded(Path(sys.argv[1]), '127.0.0.1', 9100):\n"
            "    print('held', flush=True); time.sleep(60)\n",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        refused = cli("restore", "--force", str(data_dir))
        assert refused.exit_code == 2, refused.output
        assert f"(pid {holder.pid})" in flat(refused.output) and "stop it" in flat(refused.output)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
        holder.wait()
    assert json.loads((data_dir / NOTE).read_text())["pid"] == holder.pid  # left behind
    unrefused = cli("restore", "--force", str(data_dir))
    assert "running" not in flat(unrefused.output)  # refused only for not being a backup
    assert "holds no dd0c.db" in flat(unrefused.output)


def test_restore_under_a_running_server_changes_nothing(data_dir: Path, tmp_path: Path) -> None:
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = tmp_path / "copy"
    assert cli("backup", str(copy)).exit_code == 0
    before = (data_dir / "dd0c.db").stat()
    with recorded(data_dir, "127.0.0.1", 9000):
        result = cli("restore", "--force", str(copy))
        assert result.exit_code == 2, result.output
        assert "running on http://127.0.0.1:9000" in flat(result.output)
    after = (data_dir / "dd0c.db").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_servers_note_is_neither_backed_up_nor_restored(data_dir: Path, tmp_path: Path) -> None:
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = tmp_path / "copy"
    with recorded(data_dir, "127.0.0.1", 9000):  # backups are taken while serving
        assert cli("backup", str(copy)).exit_code == 0
    assert not (copy / NOTE).exists() and not (copy / LOCK).exists()
    # A backup made by an older version holds the note of the server of its time.
    (copy / NOTE).write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": os.getpid()}))
    (data_dir / NOTE).write_text(json.dumps({"url": "http://127.0.0.1:9000", "pid": 1}))
    assert cli("restore", "--force", str(copy)).exit_code == 0
    assert json.loads((data_dir / NOTE).read_text())["url"] == "http://127.0.0.1:9000"
    assert (data_dir / "secret.key").exists()  # the keys still come back


def test_restore_of_the_data_folder_into_itself_changes_nothing(data_dir: Path) -> None:
    """`restore DATA_DIR --force` deleted the database, queue and archive, then copied
    from the files it had just deleted: the installation was gone, with a traceback."""
    assert cli("tenant", "create", "acme").exit_code == 0
    before = sorted(p.name for p in data_dir.iterdir() if p.name != LOCK)
    result = cli("restore", "--force", str(data_dir / ".." / data_dir.name))
    assert result.exit_code == 2, result.output
    assert "is DD0C_DATA_DIR itself" in flat(result.output)
    assert sorted(p.name for p in data_dir.iterdir() if p.name != LOCK) == before
    assert cli("tenant", "list").output.count("acme") == 1


def test_restore_from_a_running_servers_folder_is_refused_as_swapped(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The folders swapped (DD0C_DATA_DIR the backup, the argument the live folder):
    `--force` replaced the backup with a copy of the live folder's files."""
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = tmp_path / "copy"
    assert cli("backup", str(copy)).exit_code == 0
    before = (copy / "dd0c.db").stat()
    monkeypatch.setenv("DD0C_DATA_DIR", str(copy))
    with recorded(data_dir, "127.0.0.1", 9000):
        result = cli("restore", "--force", str(data_dir))
    assert result.exit_code == 2, result.output
    assert "running on http://127.0.0.1:9000" in flat(result.output)
    assert "not a backup" in flat(result.output)
    after = (copy / "dd0c.db").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_restore_keeps_what_the_sources_write_ahead_log_holds(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped server's folder (a crash, a machine being replaced) keeps its latest
    commits in dd0c.db-wal; restore copied dd0c.db alone and lost them, silently."""
    old = tmp_path / "old"
    monkeypatch.setenv("DD0C_DATA_DIR", str(old))
    assert cli("tenant", "create", "acme").exit_code == 0
    crashed = sqlite3.connect(old / "dd0c.db")  # left open: its commit stays in the log
    try:
        crashed.execute("PRAGMA wal_autocheckpoint = 0")
        with crashed:
            crashed.execute("UPDATE tenants SET name = 'acme-latest'")
        assert (old / "dd0c.db-wal").stat().st_size > 0
        monkeypatch.setenv("DD0C_DATA_DIR", str(data_dir))
        result = cli("restore", str(old))
        assert result.exit_code == 0, result.output
    finally:
        crashed.close()
    restored = sqlite3.connect(data_dir / "dd0c.db")
    try:
        assert restored.execute("SELECT name FROM tenants").fetchall() == [("acme-latest",)]
    finally:
        restored.close()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != LOCK}


def _backup_of_another_installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data_dir = os.environ["DD0C_DATA_DIR"]
    monkeypatch.setenv("DD0C_DATA_DIR", str(tmp_path / "other"))
    assert cli("tenant", "create", "other").exit_code == 0
    copy = tmp_path / "copy"
    assert cli("backup", str(copy)).exit_code == 0
    monkeypatch.setenv("DD0C_DATA_DIR", data_dir)
    return copy


def test_a_restore_that_fails_part_way_leaves_the_installation_as_it_was(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`restore --force` deleted the installation before copying the backup in: a
    failure part-way (a full disk, a permission, Ctrl-C) left neither the old one nor
    the new one. A named pipe in the backup's archive fails the copy after the
    databases were copied, where a disk filling up fails it too."""
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = _backup_of_another_installation(tmp_path, monkeypatch)
    (copy / "archive").mkdir(exist_ok=True)
    os.mkfifo(copy / "archive" / "stuck")
    before = _files(data_dir)
    result = cli("restore", "--force", str(copy))
    assert _files(data_dir) == before
    assert result.exit_code == 1, result.output
    said = flat(result.output)
    assert "restore failed while copying archive/" in said and "is a named pipe" in said
    assert f"nothing was changed: {data_dir} still holds the installation" in said
    assert not list(data_dir.glob(".restore-*"))  # the partial copy is gone
    listed = cli("tenant", "list").output
    assert "acme" in listed and "other" not in listed


def test_a_restore_swaps_the_backup_in_whole_and_leaves_nothing_behind(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old database's write-ahead log goes with it (replayed into the restored
    file, it would damage it); the keys come from the backup; nothing is left over."""
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = _backup_of_another_installation(tmp_path, monkeypatch)
    (data_dir / "dd0c.db-wal").write_bytes(b"a log of the old database")
    result = cli("restore", "--force", str(copy))
    assert result.exit_code == 0, result.output
    assert not (data_dir / "dd0c.db-wal").exists()
    assert (data_dir / "secret.key").read_bytes() == (copy / "secret.key").read_bytes()
    assert (data_dir / "secret.key").stat().st_mode & 0o777 == 0o600
    assert not list(data_dir.glob(".restore-*"))
    listed = cli("tenant", "list").output
    assert "other" in listed and "acme" not in listed


def test_a_restore_killed_while_swapping_is_named_before_another_runs(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("tenant", "create", "acme").exit_code == 0
    copy = _backup_of_another_installation(tmp_path, monkeypatch)
    (data_dir / ".restore-x1" / "old").mkdir(parents=True)
    before = _files(data_dir)
    result = cli("restore", "--force", str(copy))
    assert result.exit_code == 2, result.output
    assert "was left by a restore that did not finish" in flat(result.output)
    assert _files(data_dir) == before


def test_backup_into_a_folder_that_is_not_empty_is_a_usage_error(
    data_dir: Path, tmp_path: Path
) -> None:
    assert cli("tenant", "create", "acme").exit_code == 0
    target = tmp_path / "used"
    target.mkdir()
    (target / "something").write_text("x")
    result = cli("backup", str(target))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "is not empty" in flat(result.output)


def test_a_taken_port_is_named_and_no_banner_claims_it(
    data_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("ingest", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert not banner_logged(capfd)
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert not (data_dir / NOTE).exists()  # no note naming a server that never ran


def test_a_data_folder_that_refuses_writes_is_named_before_any_banner(
    data_dir: Path, no_runtime: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """The server bound its port and logged `listening`, then failed on its first
    write (the database) and exited 1."""
    assert cli("tenant", "create", "acme").exit_code == 0
    port = free_port()
    with unwritable_folder(data_dir):
        result = cli("ingest", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert not banner_logged(capfd)
    assert f"error: cannot write DD0C_DATA_DIR {data_dir}: " in result.output
    assert "write access" in result.output
    with socket.socket() as free:  # the port was never taken
        free.bind(("127.0.0.1", port))


@pytest.mark.slow
def test_a_second_serve_is_refused_and_a_killed_one_restarts(deployment: Deployment) -> None:
    with serve(deployment, "first") as first:
        second = subprocess.run(
            [str(CLI), "serve", "--port", str(free_port())],
            env=deployment.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert f"running on {first.base_url} (pid {first.process.pid})" in second.stderr
        note = json.loads((deployment.data_dir / NOTE).read_text())
        assert note["pid"] == first.process.pid
        first.kill()  # SIGKILL: the note stays, naming a dead process
    assert json.loads((deployment.data_dir / NOTE).read_text())["pid"] == first.process.pid
    started = time.monotonic()
    with serve(deployment, "again") as again:
        note = json.loads((deployment.data_dir / NOTE).read_text())
        assert note["pid"] == again.process.pid and note["url"] == again.base_url
    assert time.monotonic() - started < 60
