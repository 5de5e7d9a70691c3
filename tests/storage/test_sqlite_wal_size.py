"""A SQLite WAL file that grew is cut back when SQLite starts it over: a long-running
install's WAL files stay bounded whatever its largest purge or backlog was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dd0c_alert.storage import engine
from dd0c_alert.storage.engine import configure_sqlite


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    configure_sqlite(conn, "NORMAL")
    return conn


def test_a_wal_that_grew_while_a_reader_held_it_back_is_cut_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader's snapshot keeps checkpoints from reaching the WAL's end, so writes
    meanwhile grow it (a purge beside webhook admission left the queue's at 430 MB);
    once it is checkpointed and started over, it is no larger than the limit."""
    monkeypatch.setattr(engine, "JOURNAL_SIZE_LIMIT", 256 * 1024)
    path = tmp_path / "q.db"
    writer, reader = connect(path), connect(path)
    writer.execute("CREATE TABLE t (body BLOB)")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot, held
    for _ in range(40):
        writer.execute("INSERT INTO t VALUES (zeroblob(100000))")
    wal = path.with_name("q.db-wal")
    assert wal.stat().st_size > 4_000_000
    reader.execute("COMMIT")
    writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
    writer.execute("INSERT INTO t VALUES (1)")  # starts the WAL over
    assert wal.stat().st_size <= 256 * 1024
    writer.close()
    reader.close()
