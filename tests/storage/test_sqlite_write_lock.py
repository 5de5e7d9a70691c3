"""The embedded admission writer takes SQLite's write lock as soon as it is free, and
still gives up (the group answers 503) when another writer never lets go."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from dd0c_alert.storage import sqlite_queue
from dd0c_alert.storage.engine import configure_sqlite


def connect(path: Path, busy_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    configure_sqlite(conn, "NORMAL")
    conn.execute(f"PRAGMA busy_timeout={busy_ms}")
    return conn


def test_the_lock_is_taken_once_the_other_writer_commits(tmp_path: Path) -> None:
    holder, writer = connect(tmp_path / "q.db", 30_000), connect(tmp_path / "q.db", 0)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release).start()
    sqlite_queue.begin_promptly(writer)
    assert released.is_set()  # it waited for the holder instead of failing
    writer.execute("COMMIT")


def test_a_lock_never_released_fails_after_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_queue, "LOCK_WAIT_SECONDS", 0.2)
    holder, writer = connect(tmp_path / "q.db", 30_000), connect(tmp_path / "q.db", 0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        sqlite_queue.begin_promptly(writer)
    holder.execute("ROLLBACK")
