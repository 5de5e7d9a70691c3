"""The embedded ingest queue: its own SQLite file beside the database, written by group
commit (``group_commit``). Idempotency keys and monthly usage counters are written in
the same transaction as the events, which keeps "accepted" and "counted" in step.

Why a file of its own: SQLite has one write lock per file. With the queue in the
database, every webhook's commit waited for the worker's batch transactions (tens of
milliseconds each, all through a storm), and the race's single-alert p99 stayed near
100 ms. In its own file, admission shares a lock only with the worker's short claims
and acknowledgements.

Exactly-once across two files (their commits cannot be one): the worker's transaction
records each stored event in the database's ``processed_events`` (the inbox, through
``settle``), and the queue lets go of the events after that commit (``acknowledge``).
A process that dies in between leaves events both stored and queued; the next claim
finds them in the inbox and drops them instead of storing them twice. Inbox rows go
in a worker transaction a minute after their acknowledgement, or by age
(``purge_expired``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from dd0c_alert.logs import Throttle

from . import schema as t
from .engine import BUSY_TIMEOUT_MS, configure_sqlite
from .fair_claim import TenantTurns, fair_ids
from .files import private_file
from .group_commit import GroupCommitWriter, LockBusy
from .ports import BatchOutcome, ClaimBudget, EnqueueOutcome, LeaseLost, QueueDepth, RawEvent
from .rows import month_of

log = structlog.get_logger(__name__)
#: An acknowledgement fails for as long as the disk is full, for every event of a batch
#: the worker then stores one by one: a traceback each (64 for one batch, measured)
#: filled the very disk that was full. One line a minute, with how many were held back.
_ACK_FAILURES = Throttle(60.0)

#: The tables the queue file holds.
_TABLES = (t.ingest_queue, t.idempotency_keys, t.usage)
#: How long an inbox row stays after the queue let go of its event. A backup copies
#: the queue's file, then the database: an event processed in between must still be
#: in the database copy's inbox, or the restored worker would store it again.
INBOX_GRACE_SECONDS = 60.0
#: Inbox rows older than this go with the expired idempotency keys, unless their event
#: is still queued: a process that died between acknowledging and pruning left them.
INBOX_KEEP_SECONDS = 24 * 3600.0
_RECORD_PROCESSED = (
    "INSERT INTO processed_events (event_id, processed_at) SELECT value, ? FROM json_each(?)"
)
_FORGET_PROCESSED = (
    "DELETE FROM processed_events WHERE event_id IN (SELECT value FROM json_each(?))"
)


def queue_file(database: Path) -> Path:
    """The queue's file for a database: ``dd0c.db`` -> ``dd0c-queue.db``."""
    return database.with_name(f"{database.stem}-queue{database.suffix}")


#: A queued event is visible from ``visible_at`` 0.5, that is at once. Not 0: SQLite
#: stores a whole REAL as a zero-byte integer, so the claim's lease time made the
#: record longer, and a longer record is written anew, the body's overflow pages
#: included. With eight bytes held from the start the claim overwrites the row's own
#: page in place: 34 KB less to write for a 100-alert body.
_INSERT = (
    "INSERT OR IGNORE INTO ingest_queue (event_id, tenant_id, integration_id, provider,"
    " received_at, headers, body, body_ref, attempts, visible_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0.5)"
)
#: A group with more body bytes than this goes to the writer thread: its insert would
#: hold the event loop for over a millisecond.
WRITE_NOW_MAX_BYTES = 256 * 1024
#: While commits on the event loop take longer than this on average, groups go to the
#: writer thread (``SqliteIngestQueue._write_now``); here one takes about 1 ms.
WRITE_NOW_MAX_SECONDS = 0.004
#: Every this many groups committed on the event loop, one goes to the writer thread
#: (``SqliteIngestQueue._write_now``).
THREAD_EVERY = 32
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

#: The bytes of body each event brings into memory: its own, or for a claim-checked
#: one (no body in the queue) the largest admission takes. ``length`` of a BLOB reads
#: its size from the record header, not its pages.
_SIZES = (
    "SELECT seq, coalesce(length(body), ?) FROM ingest_queue"
    " WHERE seq IN (SELECT value FROM json_each(?))"
)


class SqliteIngestQueue:
    """The queue in ``path``; ``store`` is the database whose worker transactions
    ``settle`` (its inbox is read at each claim, and its old queue tables are emptied
    into this file the first time it opens)."""

    def __init__(
        self,
        path: Path,
        *,
        store: Path,
        synchronous: str = "FULL",
        idempotency_ttl: float = 24 * 3600,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._path = path
        self._store = store
        self._synchronous = synchronous
        self._ttl = idempotency_ttl
        self._on_commit = on_commit
        self._local = threading.local()
        self._writer_conn: sqlite3.Connection | None = None
        self._writer = GroupCommitWriter(
            self._write_group,
            write_now=self._write_now,
            on_commit=on_commit,
            on_exit=self._close_writer_conn,
        )
        #: the event loops' connections (``_write_now``) by thread, closed with the queue
        self._loop_conns: dict[int, sqlite3.Connection] = {}
        self._since_thread = 0  # groups committed by ``_write_now`` since the thread's last
        self._thread_until = 0.0  # ``_write_now`` declines until then (monotonic clock)
        self._commit_seconds = 0.0  # its commits' time, a moving average
        self._turns = TenantTurns()
        #: (when, event ids as a JSON list) let go of here: their inbox rows go in the
        #: first ``settle`` a minute later (``INBOX_GRACE_SECONDS``). One string per
        #: batch, the one its DELETE was given, holds a minute of ids in a third of the
        #: memory of a list of strings: 3.6 MB rather than 10 at 2,000 events/s.
        self._released: deque[tuple[float, str]] = deque()
        self._released_lock = threading.Lock()
        self._create()

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(path or self._path, isolation_level=None, check_same_thread=False)
        configure_sqlite(conn, self._synchronous)
        return conn

    def _conn(self) -> sqlite3.Connection:
        """A connection per calling thread, for the worker-side operations."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def _store_conn(self) -> sqlite3.Connection:
        """A connection to the database per calling thread, for the inbox."""
        conn: sqlite3.Connection | None = getattr(self._local, "store", None)
        if conn is None:
            conn = self._local.store = self._connect(self._store)
        return conn

    def _create(self) -> None:
        """Create the queue's tables, then move in what the database's own queue tables
        still hold (an installation from before the queue had its own file)."""
        dialect = sqlite_dialect.dialect()
        private_file(self._path)
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for table in _TABLES:
                conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
                for index in table.indexes:
                    conn.execute(
                        str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
                    )
            conn.execute("COMMIT")
            if self._store.exists():
                _take_over(conn, self._store)
        finally:
            conn.close()

    # --- producer side ----------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()

    def close(self) -> None:
        self._writer.close()
        for conn in self._loop_conns.values():
            conn.close()
        self._loop_conns.clear()

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
        self._since_thread = 0
        begin_promptly(conn)
        return self._write(conn, events)

    def _write_now(self, events: list[RawEvent]) -> list[EnqueueOutcome] | None:
        """On the event loop's thread (``GroupCommitWriter``): commit the group if the
        lock is free this instant; ``LockBusy`` if another writer holds it (the group is
        offered again shortly, then handed to the writer thread).

        None for a group whose bodies pass ``WRITE_NOW_MAX_BYTES``; for every
        ``THREAD_EVERY``-th group (this connection never checkpoints: copying the WAL
        back into the file would stall the loop for milliseconds; the writer thread's
        does, at its commits, as SQLite's automatic checkpoint); and for a second at a
        time while its commits take over ``WRITE_NOW_MAX_SECONDS`` on average (a slow
        disk's fsync, which the loop must not wait for at every commit; a moving
        average, since under load on a busy machine one commit in a hundred takes 4 ms
        here anyway)."""
        if self._since_thread >= THREAD_EVERY or time.monotonic() < self._thread_until:
            return None
        if sum(len(event.body or b"") for event in events) > WRITE_NOW_MAX_BYTES:
            return None
        conn = self._loop_conns.get(threading.get_ident())
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._loop_conns[threading.get_ident()] = conn
        if not _begin_now(conn):
            raise LockBusy
        started = time.monotonic()
        outcomes = self._write(conn, events)
        self._since_thread += 1
        self._commit_seconds += (time.monotonic() - started - self._commit_seconds) / 8
        if self._commit_seconds > WRITE_NOW_MAX_SECONDS:
            self._thread_until = time.monotonic() + 1.0
        return outcomes

    def _close_writer_conn(self) -> None:
        if self._writer_conn is not None:
            self._writer_conn.close()
            self._writer_conn = None

    def _write(self, conn: sqlite3.Connection, events: list[RawEvent]) -> list[EnqueueOutcome]:
        """The group's rows and the commit, in the transaction ``conn`` has begun
        (rolled back if anything fails)."""
        try:
            now = time.time()
            outcomes: list[EnqueueOutcome] = []
            rows: list[tuple[Any, ...]] = []
            usage: dict[tuple[str, str], int] = defaultdict(int)
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
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

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

    def claim(
        self, limit: int, lease_seconds: float, budget: ClaimBudget | None = None
    ) -> list[RawEvent]:
        """Up to ``limit`` visible events, in turns across tenants (``fair_claim``).

        Events a dead worker stored but never acknowledged are let go here and the
        claim goes on: answering "nothing" for them made the worker sleep a poll
        interval per such event, each claim of one (its batch limit restarts at 1),
        while the rest of the queue waited."""
        while True:
            events, skipped = self._claim_once(limit, lease_seconds, budget)
            if events or not skipped:
                return events

    def _claim_once(
        self, limit: int, lease_seconds: float, budget: ClaimBudget | None
    ) -> tuple[list[RawEvent], bool]:
        """The events claimed, and whether any were let go as stored already."""
        now = time.time()
        conn = self._conn()

        def fetch(pairs: Sequence[tuple[str, int]], share: int) -> dict[str, list[int]]:
            return {
                tenant: [row[0] for row in conn.execute(_OF_TENANT, (tenant, after, now, share))]
                for tenant, after in pairs
            }

        # Chosen and read in a snapshot, without the write lock: the lease is all that
        # needs it. With the reads under it a 500-event claim held the lock about 10 ms
        # (7-8 ms now), and webhook commits in that time went to the writer thread.
        conn.execute("BEGIN")
        try:

            def sizes(seqs: Sequence[int]) -> dict[int, int]:
                unread = budget.unread_body_bytes if budget else 0
                return dict(conn.execute(_SIZES, (unread, orjson.dumps(list(seqs)).decode())))

            tenants = [row[0] for row in conn.execute(_TENANTS)]
            seqs = fair_ids(
                tenants,
                limit,
                fetch,
                self._turns,
                sizes if budget else None,
                budget.max_bytes if budget else 0,
            )
            wanted = orjson.dumps(seqs).decode()
            rows = conn.execute(
                f"SELECT seq, {_COLUMNS} FROM ingest_queue"  # noqa: S608
                " WHERE seq IN (SELECT value FROM json_each(?))",
                (wanted,),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        if not rows:
            return [], False
        _begin_worker_side(conn)
        try:
            # Still visible: another consumer may have leased or finished some since.
            leased = dict(
                conn.execute(
                    "UPDATE ingest_queue SET visible_at = ?, attempts = attempts + 1"
                    " WHERE seq IN (SELECT value FROM json_each(?)) AND visible_at <= ?"
                    " RETURNING seq, attempts",
                    (now + lease_seconds, wanted, now),
                ).fetchall()
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        rows = [(*row[:9], leased[row[0]]) for row in rows if row[0] in leased]
        turn = {seq: n for n, seq in enumerate(seqs)}
        rows.sort(key=lambda row: turn[row[0]])
        # Only an event claimed before can have been stored: on its first claim
        # (attempts now 1) the inbox is not asked.
        stored = self._stored_already([row[1] for row in rows if row[9] > 1])
        if stored:
            rows = [row for row in rows if row[1] not in stored]
            self._release(stored, [])
        events = [
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
        return events, bool(stored)

    def _stored_already(self, event_ids: list[str]) -> set[str]:
        """The events of ``event_ids`` the inbox holds: stored by a worker transaction
        whose process died before it acknowledged them here."""
        if not event_ids:
            return set()
        rows = self._store_conn().execute(
            "SELECT event_id FROM processed_events WHERE event_id IN"
            " (SELECT value FROM json_each(?))",
            (orjson.dumps(event_ids).decode(),),
        )
        found = {row[0] for row in rows}
        if found:
            log.info("queue_events_stored_already", count=len(found))
        return found

    def settle(self, conn: sa.Connection, outcome: BatchOutcome) -> None:
        """The store's ``QueueSettle``: in the worker's transaction, record the stored
        events in the inbox and drop the rows of those this queue has let go of since.
        An event already in the inbox was stored by another transaction (a lease that
        ran out while a slow worker held it): ``LeaseLost`` rolls this one back.
        Dead letters are not recorded: replaying one queues the same event id again."""
        released: list[str] = []
        ripe = time.monotonic() - INBOX_GRACE_SECONDS
        with self._released_lock:
            while self._released and self._released[0][0] < ripe:
                released.append(self._released.popleft()[1][1:-1])
        # Both statements take their ids as one JSON list, so each is one SQL text and
        # one prepared statement: an ``IN (?, ?, ...)`` per list length filled the
        # driver's statement cache with a statement (and its text) per batch size.
        if released:
            conn.exec_driver_sql(_FORGET_PROCESSED, (f"[{','.join(released)}]",))
        if not outcome.acked:
            return
        try:
            conn.exec_driver_sql(
                _RECORD_PROCESSED, (time.time(), orjson.dumps(outcome.acked).decode())
            )
        except sa.exc.IntegrityError as exc:
            raise LeaseLost("an event of the batch was stored by another transaction") from exc

    def acknowledge(self, outcome: BatchOutcome) -> None:
        """After the worker's commit: done and dead-lettered events leave the queue,
        retried ones become visible after their delay. If this fails, the inbox still
        holds the stored events and the next claim drops them."""
        try:
            self._release(
                outcome.acked + [dead.event.event_id for dead in outcome.dead],
                [
                    (time.time() + r.delay_seconds, r.error, 0 if r.counted else 1, r.event_id)
                    for r in outcome.retries
                ],
            )
        except sqlite3.Error as exc:
            held = _ACK_FAILURES.allow(str(exc))
            if held is not None:
                events = len(outcome.acked) + len(outcome.dead) + len(outcome.retries)
                log.exception("queue_acknowledge_failed", events=events, repeated=held)

    def _release(
        self, done: list[str] | set[str], retries: list[tuple[float, str, int, str]]
    ) -> None:
        """Let go of ``done``; make each retry visible again at its time, its error kept
        and its claim given back when it was not counted (``Retry.counted``)."""
        if not done and not retries:
            return
        listed = orjson.dumps(list(done)).decode()
        conn = self._conn()
        _begin_worker_side(conn)
        try:
            if retries:
                conn.executemany(
                    "UPDATE ingest_queue SET visible_at = ?, last_error = ?,"
                    " attempts = attempts - ? WHERE event_id = ?",
                    retries,
                )
            if done:
                conn.execute(
                    "DELETE FROM ingest_queue WHERE event_id IN (SELECT value FROM json_each(?))",
                    (listed,),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        if done:
            with self._released_lock:
                self._released.append((time.monotonic(), listed))

    def events_this_month(self, tenant_id: str) -> int:
        """Webhook deliveries admitted this month."""
        row = (
            self._conn()
            .execute(
                "SELECT events FROM usage WHERE tenant_id = ? AND month = ?",
                (tenant_id, month_of(time.time())),
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def purge_expired(self, now: float) -> int:
        """Delete expired idempotency keys, and inbox rows a crash left behind (old,
        and their event no longer queued); return how many keys went."""
        conn = self._conn()
        purged = _purge_keys(conn, now)
        store = self._store_conn()
        old = [
            row[0]
            for row in store.execute(
                "SELECT event_id FROM processed_events WHERE processed_at < ?",
                (now - INBOX_KEEP_SECONDS,),
            )
        ]
        if old:
            queued = {
                row[0]
                for row in conn.execute(
                    "SELECT event_id FROM ingest_queue WHERE event_id IN"
                    " (SELECT value FROM json_each(?))",
                    (orjson.dumps(old).decode(),),
                )
            }
            store.execute(
                "DELETE FROM processed_events WHERE event_id IN (SELECT value FROM json_each(?))",
                (orjson.dumps([e for e in old if e not in queued]).decode(),),
            )
        return int(purged)

    def requeue(self, event: RawEvent) -> None:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_INSERT, _row(event))
        conn.execute("COMMIT")
        if self._on_commit is not None:
            self._on_commit()

    def release_leases(self) -> None:
        conn = self._conn()
        conn.execute("UPDATE ingest_queue SET visible_at = 0.5 WHERE visible_at > 0.5")

    def depth(self) -> QueueDepth:
        count, oldest = (
            self._conn().execute("SELECT count(*), min(received_at) FROM ingest_queue").fetchone()
        )
        return QueueDepth(count, max(0.0, time.time() - oldest) if oldest else 0.0)


#: Expired idempotency keys deleted per transaction (``_purge_keys``): about 20 ms here.
PURGE_BATCH = 1000
_PURGE_KEYS = (
    "DELETE FROM idempotency_keys WHERE rowid IN (SELECT rowid FROM idempotency_keys"
    " INDEXED BY ix_idempotency_expires WHERE expires_at < ? LIMIT ?)"
)


def _purge_keys(conn: sqlite3.Connection, now: float) -> int:
    """Delete the keys expired at ``now``, ``PURGE_BATCH`` per transaction, each taken
    as promptly as the worker's (``_begin_worker_side``); how many went.

    The queue's write lock is admission's: one DELETE of every expired key held it
    while webhooks waited. A pass removes up to a day's keys after a restart (the
    first pass runs one interval after start) or a day of the cron role being down;
    a million took 22 s in one statement, and a webhook waited 21.7 s for its 202
    (30 s makes it a 503). Between batches admission takes the lock."""
    total = 0
    while True:
        _begin_worker_side(conn)
        try:
            deleted = int(conn.execute(_PURGE_KEYS, (now, PURGE_BATCH)).rowcount)
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        total += deleted
        if deleted < PURGE_BATCH:
            return total


#: How long the admission writer waits for the write lock before the group fails (503),
#: and how often it asks meanwhile.
LOCK_WAIT_SECONDS = 30.0
LOCK_POLL_SECONDS = 0.0005


def begin_promptly(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, asked for every half millisecond while another writer holds
    the lock (on a connection whose own busy handler is off: ``busy_timeout=0``).

    SQLite's own busy handler backs off to one attempt per 100 ms after the first
    quarter second, and the worker, which starts its next batch as soon as one
    commits, usually takes the lock back in between: webhooks waited whole batches
    for their commit. Asking often takes the lock within a millisecond of its release.
    """
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while not _begin_now(conn):
        if time.monotonic() > deadline:
            conn.execute("BEGIN IMMEDIATE")  # once more: SQLite's own error, if still taken
            return
        time.sleep(LOCK_POLL_SECONDS)


def _begin_now(conn: sqlite3.Connection) -> bool:
    """``BEGIN IMMEDIATE`` if the write lock is free this instant (on a connection with
    ``busy_timeout=0``); False if another writer holds it."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
            raise
        return False
    return True


def _begin_worker_side(conn: sqlite3.Connection) -> None:
    """``begin_promptly`` for the worker's claim and acknowledgement. Under a webhook
    load the admission writer commits every few milliseconds, and SQLite's handler
    (1, 2, 5, 10 ms … apart) made the worker sleep 1.2 s of a 16 s single-alert run
    waiting for the lock, 180 ms at worst. The connection keeps the handler for its
    other statements."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        begin_promptly(conn)
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _take_over(conn: sqlite3.Connection, store: Path) -> None:
    """Move the database's queued events, idempotency keys and usage counters into the
    queue file, in one transaction over both files (each file's part is atomic; if the
    process dies between the two, the next start moves the rest and ``OR IGNORE`` skips
    what arrived already)."""
    conn.execute("ATTACH DATABASE ? AS store", (str(store),))
    try:
        present = {
            row[0]
            for row in conn.execute("SELECT name FROM store.sqlite_master WHERE type = 'table'")
        }
        moves = [
            (table.name, ", ".join(column.name for column in table.columns))
            for table in _TABLES
            if table.name in present
        ]
        probe = "SELECT 1 FROM store.{} LIMIT 1"
        if not any(conn.execute(probe.format(name)).fetchone() for name, _ in moves):
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for name, columns in moves:
                if name == "usage":
                    conn.execute(
                        "INSERT INTO usage (tenant_id, month, events)"
                        " SELECT tenant_id, month, events FROM store.usage WHERE true"
                        " ON CONFLICT (tenant_id, month)"
                        " DO UPDATE SET events = events + excluded.events"
                    )
                else:
                    copy = f"INSERT OR IGNORE INTO {name} ({columns}) SELECT {columns}"
                    conn.execute(f"{copy} FROM store.{name}")
                conn.execute(f"DELETE FROM store.{name}")  # noqa: S608
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        log.info("queue_moved_to_own_file", tables=[name for name, _ in moves])
    finally:
        conn.execute("DETACH DATABASE store")


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
