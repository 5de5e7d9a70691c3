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
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import dd0c_alert.cli as cli_module
from conftest import embedded_data_dir
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


def flat(text: str) -> str:
    """Error text without the rich box drawing and its line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_a_second_server_of_the_folder_is_refused_before_it_touches_the_queue(
    data_dir: Path, no_runtime: None
) -> None:
    with recorded(data_dir, "127.0.0.1", 9000):  # the first server
        result = cli("ingest", "--port", str(free_port()))
        assert result.exit_code == 2, result.output
        assert not isinstance(result.exception, Started)
        assert f"running on http://127.0.0.1:9000 (pid {os.getpid()})" in result.output
        assert "listening on" not in result.output
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


def test_a_taken_port_is_named_and_no_banner_claims_it(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("ingest", "--port", str(port))
    assert result.exit_code == 1, result.output
    assert "listening on" not in result.output
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in result.output
    assert not (data_dir / NOTE).exists()  # no note naming a server that never ran


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
