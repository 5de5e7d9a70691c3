"""The embedded ingest queue: a table in the SQLite database, written by group commit
(``group_commit``). Idempotency keys and monthly usage counters are written in the
same transaction as the events, which keeps "accepted" and "counted" in step.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from .engine import configure_sqlite
from .fair_claim import TenantTurns, fair_ids
from .group_commit import GroupCommitWriter
from .ports import EnqueueOutcome, QueueDepth, RawEvent
from .rows import month_of

_INSERT = (
    "INSERT OR IGNORE INTO ingest_queue (event_id, tenant_id, integration_id, provider,"
    " received_at, headers, body, body_ref, attempts, visible_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0)"
)
_COLUMNS = (
    "event_id, tenant_id, integration_id, provider, received_at, headers, body, body_ref, attempts"
)
#: The tenants with queued events, one probe of ``ix_ingest_queue_tenant`` each.
_TENANTS = (
    "WITH RECURSIVE t(tenant_id) AS (SELECT min(tenant_id) FROM ingest_queue"
    " UNION ALL SELECT (SELECT min(tenant_id) FROM ingest_queue WHERE tenant_id > t.tenant_id)"
    " FROM t WHERE t.tenant_id IS NOT NULL) SELECT tenant_id FROM t WHERE tenant_id IS NOT NULL"
)
_OF_TENANT = (
    "SELECT seq FROM ingest_queue INDEXED BY ix_ingest_queue_tenant"
    " WHERE tenant_id = ? AND seq > ? AND visible_at <= ? ORDER BY seq LIMIT ?"
)


class SqliteIngestQueue:
    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "FULL",
        idempotency_ttl: float = 24 * 3600,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._path = path
        self._synchronous = synchronous
        self._ttl = idempotency_ttl
        self._on_commit = on_commit
        self._local = threading.local()
        self._writer_conn: sqlite3.Connection | None = None
        self._writer = GroupCommitWriter(
            self._write_group, on_commit=on_commit, on_exit=self._close_writer_conn
        )
        self._turns = TenantTurns()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        configure_sqlite(conn, self._synchronous)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """A connection per calling thread, for the worker-side operations."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    # --- producer side ----------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()

    def close(self) -> None:
        self._writer.close()

    @property
    def batches(self) -> int:
        return self._writer.batches

    async def put(self, event: RawEvent) -> EnqueueOutcome:
        return await self._writer.put(event)

    def _write_group(self, events: list[RawEvent]) -> list[EnqueueOutcome]:
        """On the writer thread, with the connection it owns."""
        if self._writer_conn is None:
            self._writer_conn = self._connect()
            # The writer asks for the lock itself (``begin_promptly``) rather than
            # through SQLite's busy handler.
            self._writer_conn.execute("PRAGMA busy_timeout=0")
        conn = self._writer_conn
        try:
            return self._write(conn, events)
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    def _close_writer_conn(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    def _write(self, conn: sqlite3.Connection, events: list[RawEvent]) -> list[EnqueueOutcome]:
        now = time.time()
        outcomes: list[EnqueueOutcome] = []
        rows: list[tuple[Any, ...]] = []
        usage: dict[tuple[str, str], int] = defaultdict(int)
        begin_promptly(conn)
        for event in events:
            if event.idempotency_key:
                original = self._claim_key(conn, event, now)
                if original is not None:
                    outcomes.append(EnqueueOutcome(original, duplicate=True))
                    continue
            outcomes.append(EnqueueOutcome(event.event_id))
            rows.append(_row(event))
            usage[(event.tenant_id, month_of(event.received_at))] += 1
        conn.executemany(_INSERT, rows)
        conn.executemany(
            "INSERT INTO usage (tenant_id, month, events) VALUES (?, ?, ?)"
            " ON CONFLICT (tenant_id, month) DO UPDATE SET events = events + excluded.events",
            [(tenant, month, count) for (tenant, month), count in usage.items()],
        )
        conn.execute("COMMIT")
        return outcomes

    def _claim_key(self, conn: sqlite3.Connection, event: RawEvent, now: float) -> str | None:
        """Remember the delivery id; return the original event id if it is a repeat."""
        row = conn.execute(
            "SELECT event_id, expires_at FROM idempotency_keys WHERE tenant_id = ? AND key = ?",
            (event.tenant_id, event.idempotency_key),
        ).fetchone()
        if row is not None and row[1] > now:
            return str(row[0])
        conn.execute(
            "INSERT OR REPLACE INTO idempotency_keys (tenant_id, key, event_id, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (event.tenant_id, event.idempotency_key, event.event_id, now + self._ttl),
        )
        return None

    # --- consumer side ----------------------------------------------------------------

    def claim(self, limit: int, lease_seconds: float) -> list[RawEvent]:
        """Up to ``limit`` visible events, in turns across tenants (``fair_claim``)."""
        now = time.time()
        conn = self._conn()

        def fetch(pairs: Sequence[tuple[str, int]], share: int) -> dict[str, list[int]]:
            return {
                tenant: [row[0] for row in conn.execute(_OF_TENANT, (tenant, after, now, share))]
                for tenant, after in pairs
            }

        conn.execute("BEGIN IMMEDIATE")
        try:
            tenants = [row[0] for row in conn.execute(_TENANTS)]
            seqs = fair_ids(tenants, limit, fetch, self._turns)
            rows = conn.execute(
                f"UPDATE ingest_queue SET visible_at = ?, attempts = attempts + 1"  # noqa: S608
                f" WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq, {_COLUMNS}",
                (now + lease_seconds, orjson.dumps(seqs).decode()),
            ).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        turn = {seq: n for n, seq in enumerate(seqs)}
        rows.sort(key=lambda row: turn[row[0]])
        return [
            RawEvent(
                event_id=row[1],
                tenant_id=row[2],
                integration_id=row[3],
                provider=row[4],
                received_at=row[5],
                headers=orjson.loads(row[6]),
                body=row[7],
                body_ref=row[8],
                attempts=row[9],
            )
            for row in rows
        ]

    def requeue(self, event: RawEvent) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT, _row(event))
        conn.execute("COMMIT")
        if self._on_commit is not None:
            self._on_commit()

    def release_leases(self) -> None:
        conn = self._conn()
        conn.execute("UPDATE ingest_queue SET visible_at = 0 WHERE visible_at > 0")

    def depth(self) -> QueueDepth:
        count, oldest = (
            self._conn().execute("SELECT count(*), min(received_at) FROM ingest_queue").fetchone()
        )
        return QueueDepth(count, max(0.0, time.time() - oldest) if oldest else 0.0)


#: How long the admission writer waits for the write lock before the group fails (503),
#: and how often it asks meanwhile.
LOCK_WAIT_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.0005


def begin_promptly(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, asked for every half millisecond while another writer (the
    worker's batch) holds the lock.

    SQLite's own busy handler backs off to one attempt per 100 ms after the first
    quarter second, and the worker, which starts its next batch as soon as one
    commits, usually takes the lock back in between: webhooks waited whole batches
    for their commit. Asking often takes the lock within a millisecond of its release.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(LOCK_POLL_SECONDS)


def _row(event: RawEvent) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.tenant_id,
        event.integration_id,
        event.provider,
        event.received_at,
        orjson.dumps(event.headers).decode(),
        event.body,
        event.body_ref,
    )
