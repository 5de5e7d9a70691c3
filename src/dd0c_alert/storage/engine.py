"""Database engines with the connection settings each dialect needs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from .files import private_dir, private_file

#: Errors that say the database cannot be used now (stopped, restarting, unreachable,
#: out of connection slots, locked, its disk full), not that a request was wrong: a
#: caller may try again. The web layer answers them 503 with ``Retry-After``.
UNAVAILABLE: tuple[type[Exception], ...] = (sa.exc.OperationalError, sa.exc.TimeoutError)


def sqlite_path(url: str) -> Path:
    return Path(sa.make_url(url).database or "")


#: How long a statement waits for a lock another connection holds (SQLite's handler).
BUSY_TIMEOUT_MS = 30_000


#: The size a WAL file is cut back to when SQLite starts it over (``journal_size_limit``):
#: the database's usual size, ``WRITE_CHECKPOINT_PAGES`` of 4 KB plus a transaction.
#: Without it a WAL file never shrank: one that grew while readers kept checkpoints from
#: reaching its end (a purge of a million idempotency keys beside webhook admission
#: left the queue's at 430 MB, beside a 200 MB file) kept that size until a restart.
JOURNAL_SIZE_LIMIT = 72 * 1024 * 1024


def configure_sqlite(conn: sqlite3.Connection, synchronous: str) -> None:
    """WAL lets readers run beside the single writer; busy_timeout makes writers queue.

    ``secure_delete=FAST``: Debian builds SQLite with secure deletion on, which writes
    zeros over every page a DELETE frees. For the queue, whose rows hold whole webhook
    bodies on overflow pages, that was most of what the worker wrote: acknowledging a
    100-alert event wrote its 34 KB body again, as zeros, to the WAL and then the file.
    FAST still clears deleted content inside the pages a statement writes anyway, as
    upstream SQLite's default does not, and leaves freed pages as they are until reused.
    ``journal_size_limit``: see ``JOURNAL_SIZE_LIMIT``.
    """
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=FAST")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")


def refresh_statistics(engine: sa.Engine) -> None:
    """Give SQLite's query planner table statistics (``ANALYZE``, sampling at most
    1,000 index rows each: tens of milliseconds at a million alerts). Without them it
    guessed, and for one incident's alerts walked every alert of the tenant in time
    order (0.75 s at 1,000,000 alerts) instead of using the incident index. PostgreSQL's
    autovacuum keeps its own statistics: nothing to do there."""
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA analysis_limit=1000")
        conn.exec_driver_sql("ANALYZE")


def normalise_database_url(url: str) -> str:
    """Route the conventional ``postgres://`` and ``postgresql://`` URLs (what hosting
    providers and ``DATABASE_URL`` usually hold) to the psycopg 3 driver, the one
    installed; SQLAlchemy would otherwise pick psycopg2."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url.removeprefix(scheme)
    return url


#: libpq's network timeouts for every PostgreSQL connection (a parameter written in the
#: URL's query wins, e.g. ``?connect_timeout=10``). Without them a database host that
#: stops answering (gone behind a proxy, a partition, a failover that moved the
#: address) held each connection attempt for ever and each query on an open connection
#: for TCP's retransmission limit (some 15 minutes): webhooks and health checks hung
#: instead of answering 503. ``connect_timeout`` bounds connecting and the handshake;
#: ``tcp_user_timeout`` (milliseconds, Linux) drops a connection whose sent data goes
#: unacknowledged; the keepalives find a dead peer on an idle pooled connection.
POSTGRES_TIMEOUTS: dict[str, int] = {
    "connect_timeout": 5,
    "tcp_user_timeout": 30_000,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def postgres_connect_args(url: str) -> dict[str, int]:
    """``POSTGRES_TIMEOUTS`` less what the URL sets itself."""
    given = sa.engine.make_url(url).query
    return {name: value for name, value in POSTGRES_TIMEOUTS.items() if name not in given}


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


#: JSON columns (labels, reasons, settings) through orjson rather than the standard
#: library: a worker batch encodes a few of them per alert, and the standard encoder
#: was a tenth of the storm profile's JSON and parameter cost.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


#: The SQLite write engine's page cache, in KiB (SQLite's default is 2 MiB). A worker
#: transaction of repeated alerts dirties thousands of pages spread over the alert,
#: decision and rollup indexes (15 MB for 1,600 alerts in ``bench/worker.py``'s
#: spread). With 2 MiB, SQLite wrote pages to the WAL before the commit to make room,
#: and again when they changed after; and each transaction read back through the
#: kernel what the one before had just evicted. Draining repeats took 4-15 % less CPU
#: per alert and wrote a quarter less with 32 MiB (bench/README.md, 2026-12-06 night).
#: Pages are allocated as used: at most this much more RSS per writing connection.
#: Read connections keep SQLite's default.
WRITE_CACHE_KIB = 32 * 1024

#: How many pages the WAL gathers before the write engine's connections copy them into
#: the database file (SQLite's default is 1,000 pages, 4 MB). A worker transaction of
#: repeated alerts dirties 3,000-3,800 pages, so by default every commit was followed
#: by a checkpoint that copied all of them, and the index pages every batch changes
#: were written to the file once per batch. With 64 MB a page changed by several
#: batches is copied once: ``bench/worker.py`` wrote 17-26 -> 11-16 KB per alert in
#: spread, 13.1 -> 10.7 in single, 5.5 -> 5.0 in storm, for the same CPU or less
#: (bench/README.md, 2026-12-07); a disk with a throughput cap, as cloud volumes have,
#: takes a third more repeats. The WAL file is cut back to ``JOURNAL_SIZE_LIMIT`` each
#: time SQLite starts it over.
WRITE_CHECKPOINT_PAGES = 16_384


def make_engines(url: str, synchronous: str = "FULL") -> tuple[sa.Engine, sa.Engine]:
    """A write engine and a read engine.

    On SQLite, write transactions start with ``BEGIN IMMEDIATE`` so two writers queue
    on the lock instead of failing to upgrade a read lock; reads use a plain
    ``BEGIN`` and, under WAL, never wait for writers. The write engine's connections
    keep a larger page cache (``WRITE_CACHE_KIB``) and checkpoint less often
    (``WRITE_CHECKPOINT_PAGES``); reads write nothing, so never checkpoint. PostgreSQL
    needs no such split: one pooled engine serves both (pre-ping drops connections a
    server restart broke). Both keep a failed statement's parameters (alert texts,
    labels, tokens being checked) out of its exception, which tracebacks log.
    """
    if not url.startswith("sqlite"):
        url = normalise_database_url(url)
        engine = sa.create_engine(
            url,
            pool_size=5,
            max_overflow=10,
            pool_pre_ping=True,
            connect_args=postgres_connect_args(url),
            hide_parameters=True,
            **_JSON,
        )
        return engine, engine
    database = sqlite_path(url)
    if str(database) not in ("", ":memory:"):
        private_dir(database.parent)
        private_file(database)

    def build(begin: str, *, writes: bool = False) -> sa.Engine:
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,
            **_JSON,
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            configure_sqlite(dbapi_conn, synchronous)
            if writes:
                dbapi_conn.execute(f"PRAGMA cache_size=-{WRITE_CACHE_KIB}")
                dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={WRITE_CHECKPOINT_PAGES}")

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql(begin)

        return engine

    return build("BEGIN IMMEDIATE", writes=True), build("BEGIN")
