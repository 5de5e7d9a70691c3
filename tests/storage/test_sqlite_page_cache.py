"""A worker-sized write transaction stays in the write engine's page cache until its
commit, instead of spilling pages to the WAL early (and writing them again when they
change), as it does with SQLite's default 2 MiB cache."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa

from dd0c_alert.storage.engine import WRITE_CACHE_KIB, make_engines

ROWS, ROW_BYTES = 1_500, 4_000  # about 6 MB of pages: over 2 MiB, well under the cache


def wal_bytes_before_commit(engine: sa.Engine, database: Path) -> int:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
    with closing(sqlite3.connect(database)) as plain:
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO t (body) VALUES (?)", [(os.urandom(ROW_BYTES),) for _ in range(ROWS)]
        )
        return os.path.getsize(f"{database}-wal")


def test_the_write_engine_holds_a_large_transaction_until_its_commit(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    write, read = make_engines(f"sqlite:///{database}")
    try:
        with write.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -WRITE_CACHE_KIB
        assert wal_bytes_before_commit(write, database) == 0
        # The read engine keeps SQLite's default cache, and the same transaction spills
        # there: what the setting saves is real.
        assert wal_bytes_before_commit(read, database) > 2 * 1024 * 1024
    finally:
        write.dispose()
        read.dispose()
