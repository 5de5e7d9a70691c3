"""The write engine's settings for worker-sized transactions: one stays in the page
cache until its commit, instead of spilling pages to the WAL early (and writing them
again when they change), as it does with SQLite's default 2 MiB cache; and its pages
stay in the WAL after the commit, to be copied into the file once for several
transactions, rather than after every transaction over SQLite's default 1,000 pages."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy as sa

from dd0c_alert.storage.engine import WRITE_CACHE_KIB, WRITE_CHECKPOINT_PAGES, make_engines

ROWS, ROW_BYTES = 1_500, 4_000  # about 6 MB of pages: over 2 MiB, well under the cache


def fresh_table(engine: sa.Engine, database: Path) -> None:
    """Table ``t``, empty, with nothing in the WAL."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body BLOB)")
        conn.exec_driver_sql("DELETE FROM t")
    with closing(sqlite3.connect(database)) as plain:
        plain.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def insert_rows(conn: sa.Connection) -> None:
    conn.exec_driver_sql(
        "INSERT INTO t (body) VALUES (?)", [(os.urandom(ROW_BYTES),) for _ in range(ROWS)]
    )


def wal_bytes_before_commit(engine: sa.Engine, database: Path) -> int:
    fresh_table(engine, database)
    with engine.begin() as conn:
        insert_rows(conn)
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


def file_growth_at_commit(database: Path, writes: bool) -> int:
    """How much a 1,500-page commit grows a new database's file (not its WAL), through
    the write engine's connections or the read engine's (SQLite's default settings)."""
    write, read = make_engines(f"sqlite:///{database}")
    engine = write if writes else read
    try:
        fresh_table(engine, database)
        before = os.path.getsize(database)
        with engine.begin() as conn:
            insert_rows(conn)
        return os.path.getsize(database) - before
    finally:
        write.dispose()
        read.dispose()


def test_the_write_engine_leaves_a_large_commit_in_the_wal(tmp_path: Path) -> None:
    """1,500 pages: over SQLite's default checkpoint threshold, under ours."""
    database = tmp_path / "store.db"
    write, read = make_engines(f"sqlite:///{database}")
    with write.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == (
            WRITE_CHECKPOINT_PAGES
        )
    write.dispose()
    read.dispose()
    assert file_growth_at_commit(database, writes=True) == 0  # the pages wait in the WAL
    # With SQLite's default the same commit is copied into the file at once. (Read
    # connections never commit writes; here they stand for the default.)
    assert file_growth_at_commit(tmp_path / "other.db", writes=False) > ROWS * ROW_BYTES
