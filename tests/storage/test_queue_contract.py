"""The ingest queue contract, run against the embedded SQLite queue and against pgmq on
a real PostgreSQL (as the application role, so row-level security applies): what
ingestion and the worker rely on must hold for both."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dd0c_alert.domain.ids import new_id
from dd0c_alert.storage import sqlite_queue
from dd0c_alert.storage.batch import QueueSettle
from dd0c_alert.storage.engine import make_engines
from dd0c_alert.storage.migrate import upgrade
from dd0c_alert.storage.pgmq_queue import PgmqIngestQueue
from dd0c_alert.storage.ports import (
    BatchOutcome,
    ClaimBudget,
    DeadLetter,
    EnqueueOutcome,
    IngestQueue,
    LeaseLost,
    RawEvent,
    Retry,
)
from dd0c_alert.storage.rows import month_of
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue, queue_file
from servers import APP, PostgresServer

TENANT, OTHER = "T" * 26, "U" * 26
LEASE = 1.0


@dataclass
class Harness:
    """One backend: a way to open queue instances (each one a "process") on one
    database, and the settle step the worker's transaction runs for them."""

    name: str
    engine: sa.Engine
    open_queue: Callable[..., IngestQueue]
    settle_of: Callable[[IngestQueue], QueueSettle]
    opened: list[IngestQueue] = field(default_factory=list)

    def queue(self, **kwargs: Any) -> IngestQueue:
        queue = self.open_queue(**kwargs)
        queue.start()
        self.opened.append(queue)
        return queue

    def settle(self, queue: IngestQueue, outcome: BatchOutcome, *, fail: bool = False) -> None:
        """Settle inside a store transaction; ``fail`` rolls that transaction back."""

        class Rollback(Exception):
            pass

        try:
            with self.engine.begin() as conn:
                self.settle_of(queue)(conn, outcome)
                if fail:
                    raise Rollback
        except Rollback:
            return
        queue.acknowledge(outcome)  # what the store does after its commit


@pytest.fixture(params=["sqlite", "pgmq"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "sqlite":
        database = tmp_path / "dd0c.db"
        engine, _ = make_engines(f"sqlite:///{database}")
        upgrade(engine)
        harness = Harness(
            "sqlite",
            engine,
            lambda **kw: SqliteIngestQueue(
                kw.pop("path", queue_file(database)), store=database, **kw
            ),
            lambda queue: queue.settle,  # type: ignore[attr-defined]
        )
    else:
        server: PostgresServer = request.getfixturevalue("pg_server")
        database: str = request.getfixturevalue("pg_database")
        engine = sa.create_engine(server.url(database, APP))
        harness = Harness(
            "pgmq",
            engine,
            lambda **kw: PgmqIngestQueue(engine, **kw),
            lambda queue: queue.settle,  # type: ignore[attr-defined]
        )
    yield harness
    for queue in harness.opened:
        queue.close()
    engine.dispose()


def event(
    tenant_id: str = TENANT,
    *,
    key: str | None = None,
    body: bytes | None = b'{"ok": true}',
    headers: dict[str, str] | None = None,
) -> RawEvent:
    return RawEvent(
        event_id=new_id(),
        tenant_id=tenant_id,
        integration_id="I" * 26,
        provider="custom",
        received_at=time.time(),
        headers=headers if headers is not None else {"content-type": "application/json"},
        body=body,
        idempotency_key=key,
    )


def put_all(*pairs: tuple[IngestQueue, RawEvent]) -> list[EnqueueOutcome]:
    """Put every event at once (one group commit per queue, racing each other)."""

    async def run() -> list[EnqueueOutcome]:
        return list(await asyncio.gather(*(queue.put(e) for queue, e in pairs)))

    return asyncio.run(run())


def claim_until(
    queue: IngestQueue, predicate: Callable[[list[RawEvent]], bool], timeout: float = 10.0
) -> list[RawEvent]:
    """Claim repeatedly until what comes back satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    while True:
        claimed = queue.claim(100, LEASE)
        if predicate(claimed):
            return claimed
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {timeout}s: {claimed}")
        time.sleep(0.05)


def ids(events: list[RawEvent]) -> set[str]:
    return {e.event_id for e in events}


def test_claim_returns_what_was_put_byte_for_byte(backend: Harness) -> None:
    queue = backend.queue()
    inline = event(
        body=bytes(range(256)) + '€ \u2028 \\ "'.encode(),
        headers={
            "content-type": "application/json",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "x-note": 'naïve ✓ \\ "quoted"',
        },
    )
    pointed = event(body=None)
    pointed.body_ref = "archive/T/2026/12/01/x.json"
    outcomes = put_all((queue, inline), (queue, pointed))
    assert outcomes == [EnqueueOutcome(inline.event_id), EnqueueOutcome(pointed.event_id)]
    # 202 only after commit: claimable the moment put has returned, with no waiting.
    claimed = {e.event_id: e for e in queue.claim(10, LEASE)}
    assert set(claimed) == {inline.event_id, pointed.event_id}
    for sent in (inline, pointed):
        got = claimed[sent.event_id]
        assert (got.tenant_id, got.integration_id, got.provider) == (
            sent.tenant_id,
            sent.integration_id,
            sent.provider,
        )
        assert got.received_at == sent.received_at
        assert got.headers == sent.headers
        assert got.body == sent.body
        assert got.body_ref == sent.body_ref
        assert got.attempts == 1


def test_a_claim_holds_at_most_its_byte_budget_of_bodies(backend: Harness) -> None:
    """In queue order, as many events as their bodies fit the budget; the first
    always, however large; a claim-checked body (only its archive key queued) counts
    as the largest admission takes."""
    queue = backend.queue()
    budget = ClaimBudget(max_bytes=25_000, unread_body_bytes=20_000)
    small = [event(body=b"x" * 10_000) for _ in range(4)]
    put_all(*((queue, e) for e in small))
    assert [e.event_id for e in queue.claim(10, 60, budget)] == [e.event_id for e in small[:2]]
    assert [e.event_id for e in queue.claim(10, 60, budget)] == [e.event_id for e in small[2:]]
    pointed = event(body=None)
    pointed.body_ref = "archive/T/2026/12/08/large.json"
    large, after = event(body=b"y" * 50_000), event(body=b"z" * 10_000)
    for one in (pointed, large, after):
        put_all((queue, one))
    assert ids(queue.claim(10, 60, budget)) == {pointed.event_id}  # 20,000 + 50,000
    assert ids(queue.claim(10, 60, budget)) == {large.event_id}  # alone, over the budget
    assert ids(queue.claim(10, 60, budget)) == {after.event_id}
    assert queue.claim(10, 60, budget) == []


def test_a_repeated_delivery_id_answers_the_original_and_enqueues_once(backend: Harness) -> None:
    queue = backend.queue()
    first = event(key="delivery-1")
    [accepted] = put_all((queue, first))
    assert accepted == EnqueueOutcome(first.event_id)
    # Later, and twice within one group commit: both repeats point at the first.
    again, once_more = event(key="delivery-1"), event(key="delivery-1")
    assert put_all((queue, again), (queue, once_more)) == [
        EnqueueOutcome(first.event_id, duplicate=True),
        EnqueueOutcome(first.event_id, duplicate=True),
    ]
    # Two new deliveries of one key in one group: the first wins.
    a, b = event(key="delivery-2"), event(key="delivery-2")
    assert put_all((queue, a), (queue, b)) == [
        EnqueueOutcome(a.event_id),
        EnqueueOutcome(a.event_id, duplicate=True),
    ]
    # Keys are per tenant.
    elsewhere = event(OTHER, key="delivery-1")
    assert put_all((queue, elsewhere)) == [EnqueueOutcome(elsewhere.event_id)]
    assert queue.depth().messages == 3
    assert ids(queue.claim(10, LEASE)) == {first.event_id, a.event_id, elsewhere.event_id}


def test_a_delivery_id_past_its_ttl_is_accepted_again(backend: Harness) -> None:
    queue = backend.queue(idempotency_ttl=0)
    first, later = event(key="k"), event(key="k")
    put_all((queue, first))
    assert put_all((queue, later)) == [EnqueueOutcome(later.event_id)]
    assert ids(queue.claim(10, LEASE)) == {first.event_id, later.event_id}


def test_usage_counts_each_accepted_event_once(backend: Harness) -> None:
    queue = backend.queue()
    events = [event(key="a"), event(key="a"), event(), event(OTHER)]
    put_all(*((queue, e) for e in events))
    put_all((queue, event(key="a")))
    assert queue.events_this_month(TENANT) == 2
    assert queue.events_this_month(OTHER) == 1


def test_expired_delivery_ids_are_purged_across_tenants(backend: Harness) -> None:
    queue = backend.queue(idempotency_ttl=100)
    put_all((queue, event(key="a")), (queue, event(OTHER, key="a")))
    assert queue.purge_expired(time.time()) == 0
    assert queue.purge_expired(time.time() + 200) == 2
    assert queue.purge_expired(time.time() + 200) == 0
    repeat = event(key="a")  # its earlier delivery is forgotten: accepted as new
    assert put_all((queue, repeat)) == [EnqueueOutcome(repeat.event_id)]


def test_a_claimed_event_is_invisible_until_its_lease_ends(backend: Harness) -> None:
    queue = backend.queue()
    sent = event()
    put_all((queue, sent))
    [first] = queue.claim(10, LEASE)
    assert first.attempts == 1
    assert queue.claim(10, LEASE) == []
    assert queue.depth().messages == 1  # leased, still queued
    [again] = claim_until(queue, bool)
    assert again.event_id == sent.event_id
    assert again.attempts == 2


def test_claims_take_turns_across_tenants_keeping_each_tenants_order(backend: Harness) -> None:
    """A storm queued ahead of another tenant's alert does not hold it back: every
    tenant with work is in the next batch, each tenant's events in queue order."""
    queue = backend.queue()
    storm = [event("A" * 26) for _ in range(50)]
    for sent in storm:  # one by one, so queue order is storm order
        put_all((queue, sent))
    quiet = [event("B" * 26), event("C" * 26)]
    put_all(*((queue, sent) for sent in quiet))
    first = queue.claim(10, LEASE)
    assert ids(quiet) <= ids(first)
    assert [e.event_id for e in first if e.tenant_id == "A" * 26] == [e.event_id for e in storm[:8]]
    rest = queue.claim(100, LEASE)
    assert [e.event_id for e in rest] == [e.event_id for e in storm[8:]]


def test_with_more_tenants_than_a_batch_every_tenant_gets_its_turn(backend: Harness) -> None:
    queue = backend.queue()
    tenants = [f"{n:026d}" for n in range(6)]
    put_all(*((queue, event(t)) for t in tenants for _ in range(3)))
    served = [{e.tenant_id for e in queue.claim(2, LEASE)} for _ in range(3)]
    assert set().union(*served) == set(tenants)


def test_settle_acks_retries_and_dead_letters(backend: Harness) -> None:
    queue = backend.queue()
    done, retried, dead = event(), event(), event()
    put_all((queue, done), (queue, retried), (queue, dead))
    claimed = {e.event_id: e for e in queue.claim(10, 60)}
    assert len(claimed) == 3
    backend.settle(
        queue,
        BatchOutcome(
            acked=[done.event_id],
            retries=[Retry(retried.event_id, "boom", delay_seconds=0.5)],
            dead=[DeadLetter(claimed[dead.event_id], "bad payload")],
        ),
    )
    assert queue.depth().messages == 1
    # The retry waits for its delay (not the 60 s lease), then comes back counted.
    [back] = claim_until(queue, bool)
    assert back.event_id == retried.event_id
    assert back.attempts == 2
    backend.settle(queue, BatchOutcome(acked=[back.event_id]))
    assert queue.depth().messages == 0


def test_a_rolled_back_settle_leaves_the_messages_queued(backend: Harness) -> None:
    queue = backend.queue()
    first, second = event(), event()
    put_all((queue, first), (queue, second))
    assert len(queue.claim(10, LEASE)) == 2
    backend.settle(queue, BatchOutcome(acked=[first.event_id, second.event_id]), fail=True)
    assert queue.depth().messages == 2
    # The worker retries part of the batch in a new transaction (one by one).
    backend.settle(queue, BatchOutcome(acked=[first.event_id]))
    assert queue.depth().messages == 1
    # The other was never acknowledged: it comes back once its lease ends.
    [back] = claim_until(queue, bool)
    assert back.event_id == second.event_id
    assert back.attempts == 2


def test_requeue_replays_a_dead_letter_once(backend: Harness) -> None:
    queue = backend.queue()
    sent = event(body=b"\x00\xff not json")
    put_all((queue, sent))
    [claimed] = queue.claim(10, 60)
    backend.settle(queue, BatchOutcome(dead=[DeadLetter(claimed, "bad payload")]))
    assert queue.depth().messages == 0
    claimed.attempts = 0  # what ``dlq replay`` does
    queue.requeue(claimed)
    queue.requeue(claimed)  # still queued: nothing more
    assert queue.depth().messages == 1
    [replayed] = queue.claim(10, LEASE)
    assert (replayed.event_id, replayed.body, replayed.attempts) == (sent.event_id, sent.body, 1)


def test_depth_counts_messages_and_the_age_of_the_oldest(backend: Harness) -> None:
    queue = backend.queue()
    empty = queue.depth()
    assert (empty.messages, empty.oldest_age_seconds) == (0, 0.0)
    put_all((queue, event()), (queue, event()))
    depth = queue.depth()
    assert depth.messages == 2
    assert depth.oldest_age_seconds >= 0.0


def test_close_flushes_what_was_admitted_and_stops_the_writer(backend: Harness) -> None:
    writers_before = _writers()
    queue = backend.open_queue()
    backend.opened.append(queue)
    events = [event() for _ in range(20)]

    async def run() -> list[EnqueueOutcome]:
        tasks = [asyncio.ensure_future(queue.put(e)) for e in events]
        await asyncio.sleep(0)  # every put is pending
        # The writer's first wake-up finds both the pending events and the stop.
        queue.start()
        queue.close()
        return list(await asyncio.gather(*tasks))

    outcomes = asyncio.run(run())
    assert [o.event_id for o in outcomes] == [e.event_id for e in events]
    assert queue.depth().messages == 20
    assert _writers() <= writers_before


def _writers() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "ingest-writer"}


def test_a_failed_commit_fails_every_waiter_of_its_group(backend: Harness, tmp_path: Path) -> None:
    if backend.name == "sqlite":
        broken = backend.queue(path=tmp_path / "broken.db")
        with contextlib.closing(sqlite3.connect(tmp_path / "broken.db")) as db:
            db.execute("DROP TABLE ingest_queue")
    else:
        broken = backend.queue(queue_name="no_such_queue")

    async def run() -> list[EnqueueOutcome | BaseException]:
        puts = (broken.put(event()) for _ in range(5))
        return list(await asyncio.gather(*puts, return_exceptions=True))

    results = asyncio.run(run())
    assert all(isinstance(result, Exception) for result in results), results


def test_concurrent_producers_enqueue_each_delivery_id_once(backend: Harness) -> None:
    """Two queue instances stand for two ingest processes on one database; every
    delivery arrives at both at the same moment."""
    one, two = backend.queue(), backend.queue()
    winners: set[str] = set()
    for round_ in range(3):
        pairs: list[tuple[IngestQueue, RawEvent]] = []
        for n in range(40):
            tenant = TENANT if n % 2 else OTHER
            key = f"r{round_}-k{n}"
            pairs += [(one, event(tenant, key=key)), (two, event(tenant, key=key))]
        outcomes = put_all(*pairs)
        for i in range(0, len(pairs), 2):
            a, b = outcomes[i], outcomes[i + 1]
            assert a.duplicate != b.duplicate, (a, b)
            assert a.event_id == b.event_id  # the repeat names the original
            winners.add(a.event_id)
    assert len(winners) == 120
    assert ids(one.claim(1000, LEASE)) == winners
    assert one.events_this_month(TENANT) + one.events_this_month(OTHER) == 120


# --- pgmq only --------------------------------------------------------------------------


@pytest.fixture
def pg_engine(pg_server: PostgresServer, pg_database: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_server.url(pg_database, APP))
    yield engine
    engine.dispose()


def test_pgmq_carries_the_trace_context_in_message_headers(pg_engine: sa.Engine) -> None:
    queue = PgmqIngestQueue(pg_engine)
    queue.start()
    traced = event(headers={"traceparent": "00-abc-def-01", "tracestate": "v=1", "x-a": "b"})
    put_all((queue, traced), (queue, event()))
    queue.close()
    with pg_engine.connect() as conn:
        headers = conn.execute(
            sa.text("SELECT headers, headers IS NULL FROM pgmq.q_dd0c_ingest ORDER BY msg_id")
        ).all()
        trace = {"traceparent": "00-abc-def-01", "tracestate": "v=1"}
        assert [tuple(row) for row in headers] == [(trace, False), (None, True)]


def test_pgmq_keeps_dead_lettered_messages_in_its_archive(pg_engine: sa.Engine) -> None:
    queue = PgmqIngestQueue(pg_engine)
    queue.start()
    sent = event()
    put_all((queue, sent))
    queue.close()
    [claimed] = queue.claim(10, 60)
    with pg_engine.begin() as conn:
        queue.settle(conn, BatchOutcome(dead=[DeadLetter(claimed, "bad")]))
    with pg_engine.connect() as conn:
        archived = conn.execute(
            sa.text("SELECT message->>'event_id', read_ct FROM pgmq.a_dd0c_ingest")
        ).all()
    assert archived == [(sent.event_id, 1)]


def test_pgmq_a_consumer_slower_than_its_lease_cannot_commit(pg_engine: sa.Engine) -> None:
    """A's lease ends before it settles and B reads the message again: A's settle
    refuses (its batch rolls back), B's goes through. Without the fence both would
    commit and every alert of the batch would count twice."""
    slow, other = PgmqIngestQueue(pg_engine), PgmqIngestQueue(pg_engine)
    slow.start()
    put_all((slow, event()))
    [mine] = slow.claim(10, 1)
    deadline = time.monotonic() + 10
    while not (taken := other.claim(10, 60)):
        assert time.monotonic() < deadline, "the lease never ended"
        time.sleep(0.05)
    [theirs] = taken
    assert (theirs.event_id, theirs.attempts) == (mine.event_id, 2)
    with pytest.raises(LeaseLost), pg_engine.begin() as conn:
        slow.settle(conn, BatchOutcome(acked=[mine.event_id]))
    with pg_engine.begin() as conn:
        other.settle(conn, BatchOutcome(acked=[theirs.event_id]))
    assert other.depth().messages == 0
    with pytest.raises(LeaseLost), pg_engine.begin() as conn:  # not read here at all
        other.settle(conn, BatchOutcome(acked=[event().event_id]))
    slow.close()


def test_pgmq_a_claim_rewrites_its_row_on_the_same_page(pg_engine: sa.Engine) -> None:
    """A claim updates the message's row; PostgreSQL logs only the changed bytes when
    the new version stays on the old one's page, the whole row (the webhook body a
    second time) otherwise. Full pages (the default fill factor) moved every claimed
    row: about a fifth of a production worker's WAL."""
    queue = PgmqIngestQueue(pg_engine)
    queue.start()
    body = b'{"alerts": [{"labels": {"alertname": "HighLatency"}, "pad": "%s"}]}' % (b"x" * 1200)
    put_all(*((queue, event(body=body)) for _ in range(12)))
    queue.close()
    pages = sa.text("SELECT msg_id, (ctid::text::point)[0] FROM pgmq.q_dd0c_ingest")
    with pg_engine.connect() as conn:
        before = {msg_id: page for msg_id, page in conn.execute(pages)}
    assert len(set(before.values())) > 1, "the messages should fill more than one page"
    assert len(queue.claim(12, 60)) == 12
    with pg_engine.connect() as conn:
        assert {msg_id: page for msg_id, page in conn.execute(pages)} == before


# --- SQLite only: the queue's own file and the database's inbox -------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[sa.Engine, Path]]:
    database = tmp_path / "dd0c.db"
    engine, _ = make_engines(f"sqlite:///{database}")
    upgrade(engine)
    yield engine, database
    engine.dispose()


def _inbox(engine: sa.Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT event_id FROM processed_events")).scalars())


def test_sqlite_an_event_stored_but_not_let_go_is_dropped_at_its_next_claim(
    sqlite_store: tuple[sa.Engine, Path],
) -> None:
    """The process died between the worker's commit and the queue's acknowledgement:
    the restarted worker must not store the event a second time."""
    engine, database = sqlite_store
    queue = SqliteIngestQueue(queue_file(database), store=database)
    queue.start()
    stored, waiting = event(), event()
    put_all((queue, stored), (queue, waiting))
    claimed = {e.event_id: e for e in queue.claim(10, 60)}
    with engine.begin() as conn:
        queue.settle(conn, BatchOutcome(acked=[stored.event_id]))
    # killed here: no acknowledge(); the restart makes every lease visible again
    queue.release_leases()
    assert queue.depth().messages == 2
    assert ids(queue.claim(10, 60)) == {waiting.event_id}
    assert queue.depth().messages == 1  # the stored one is gone from the queue too
    assert claimed.keys() == {stored.event_id, waiting.event_id}
    queue.close()


def test_sqlite_a_claim_of_stored_events_goes_on_to_the_waiting_ones(
    sqlite_store: tuple[sa.Engine, Path],
) -> None:
    """After a crash with a whole batch stored but not let go, a claim of one (the
    restarted worker's first) lets the stored ones go and returns a waiting event,
    not "nothing" (the worker then slept a poll interval per stored event)."""
    engine, database = sqlite_store
    queue = SqliteIngestQueue(queue_file(database), store=database)
    queue.start()
    stored = [event() for _ in range(5)]
    waiting = event()
    put_all(*((queue, e) for e in [*stored, waiting]))
    assert len(queue.claim(5, 60)) == 5
    with engine.begin() as conn:
        queue.settle(conn, BatchOutcome(acked=[e.event_id for e in stored]))
    queue.release_leases()  # killed before acknowledge(); restarted
    assert ids(queue.claim(1, 60)) == {waiting.event_id}
    assert queue.depth().messages == 1
    queue.close()


def test_sqlite_claim_and_acknowledgement_do_not_write_the_body_again(
    sqlite_store: tuple[sa.Engine, Path],
) -> None:
    """A 100 KB body spans 25 overflow pages. The claim must overwrite its row's own
    page in place (the record keeps its length), and the acknowledgement must free the
    pages without writing zeros over them (``secure_delete``, on in Debian's SQLite)."""
    _, database = sqlite_store
    path = queue_file(database)
    queue = SqliteIngestQueue(path, store=database)
    queue.start()
    put_all((queue, event(body=b'{"pad": "%s"}' % (b"x" * 100_000))))
    wal = path.with_name(path.name + "-wal")

    def frames_written_by(step: Callable[[], object]) -> int:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert wal.stat().st_size == 0
        step()
        return (wal.stat().st_size - 32) // (4096 + 24)  # WAL header, frame header + page

    claimed: list[RawEvent] = []
    # Before: 51 frames for the claim (a new chain, the old one zeroed), 30 for the ack.
    assert frames_written_by(lambda: claimed.extend(queue.claim(1, 60))) <= 8
    assert len(claimed[0].body or b"") > 100_000
    done = BatchOutcome(acked=[claimed[0].event_id])
    assert frames_written_by(lambda: queue.acknowledge(done)) <= 8
    assert queue.depth().messages == 0
    queue.close()


def test_sqlite_an_event_stored_twice_rolls_the_second_transaction_back(
    sqlite_store: tuple[sa.Engine, Path],
) -> None:
    """A worker slower than its lease: another stored the event meanwhile."""
    engine, database = sqlite_store
    queue = SqliteIngestQueue(queue_file(database), store=database)
    sent = event()
    with engine.begin() as conn:
        queue.settle(conn, BatchOutcome(acked=[sent.event_id]))
    with pytest.raises(LeaseLost), engine.begin() as conn:
        queue.settle(conn, BatchOutcome(acked=[sent.event_id]))
    assert _inbox(engine) == {sent.event_id}


def test_sqlite_inbox_rows_go_after_the_queue_let_go_of_their_events(
    sqlite_store: tuple[sa.Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, database = sqlite_store
    queue = SqliteIngestQueue(queue_file(database), store=database)
    queue.start()
    first, second = event(), event()
    put_all((queue, first), (queue, second))
    queue.claim(10, 60)
    with engine.begin() as conn:
        queue.settle(conn, BatchOutcome(acked=[first.event_id]))
    queue.acknowledge(BatchOutcome(acked=[first.event_id]))
    with engine.begin() as conn:  # within the grace period: kept (a backup may need it)
        queue.settle(conn, BatchOutcome(acked=[second.event_id]))
    queue.acknowledge(BatchOutcome(acked=[second.event_id]))
    assert _inbox(engine) == {first.event_id, second.event_id}
    monkeypatch.setattr(sqlite_queue, "INBOX_GRACE_SECONDS", 0.0)
    with engine.begin() as conn:
        queue.settle(conn, BatchOutcome())
    assert _inbox(engine) == set()
    assert queue.depth().messages == 0
    queue.close()


def test_sqlite_the_queue_file_takes_over_the_databases_queue_tables(
    sqlite_store: tuple[sa.Engine, Path],
) -> None:
    """An installation from before the queue had its own file: what its database's
    queue tables held is moved, not lost."""
    engine, database = sqlite_store
    waiting = event(key="delivery-1")
    month = month_of(time.time())
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ingest_queue (event_id, tenant_id, integration_id, provider,"
                " received_at, headers, body, attempts, visible_at)"
                " VALUES (:e, :t, :i, 'custom', :r, '{}', :b, 0, 0)"
            ),
            {
                "e": waiting.event_id,
                "t": TENANT,
                "i": waiting.integration_id,
                "r": waiting.received_at,
                "b": waiting.body,
            },
        )
        conn.execute(
            sa.text("INSERT INTO idempotency_keys VALUES (:t, 'delivery-1', :e, :x)"),
            {"t": TENANT, "e": waiting.event_id, "x": time.time() + 3600},
        )
        conn.execute(sa.text("INSERT INTO usage VALUES (:t, :m, 5)"), {"t": TENANT, "m": month})
    queue = SqliteIngestQueue(queue_file(database), store=database)
    queue.start()
    assert ids(queue.claim(10, 60)) == {waiting.event_id}
    repeat = event(key="delivery-1")
    assert put_all((queue, repeat)) == [EnqueueOutcome(waiting.event_id, duplicate=True)]
    assert queue.events_this_month(TENANT) == 5
    with engine.connect() as conn:
        for table in ("ingest_queue", "idempotency_keys", "usage"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 0
    queue.close()
    # A second opening finds nothing left to move.
    SqliteIngestQueue(queue_file(database), store=database).close()


def test_sqlite_expired_delivery_ids_go_in_short_transactions_admission_can_pass(
    sqlite_store: tuple[sa.Engine, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The queue file's write lock is admission's: a purge of a million expired keys in
    one DELETE held it for 22 s while webhooks waited. They go ``PURGE_BATCH`` at a
    time, each batch its own transaction, and a webhook is admitted between two."""
    _, database = sqlite_store
    monkeypatch.setattr(sqlite_queue, "PURGE_BATCH", 2)
    queue = SqliteIngestQueue(queue_file(database), store=database, idempotency_ttl=100)
    queue.start()
    put_all(*((queue, event(key=f"k{n}")) for n in range(5)))
    deletes: list[str] = []
    admitted: list[EnqueueOutcome] = []
    webhook = sqlite3.connect(queue_file(database), isolation_level=None)
    webhook.execute("PRAGMA busy_timeout=0")

    def between_batches(statement: str) -> None:
        if statement.startswith("DELETE FROM idempotency_keys"):
            deletes.append(statement)
        elif statement == "BEGIN IMMEDIATE" and len(deletes) == 1:
            # The first batch committed: the lock is free for a webhook's commit.
            webhook.execute("BEGIN IMMEDIATE")
            webhook.execute(sqlite_queue._INSERT, sqlite_queue._row(late := event()))
            webhook.execute("COMMIT")
            admitted.append(EnqueueOutcome(late.event_id))

    purging = queue._conn()
    purging.set_trace_callback(between_batches)
    try:
        assert queue.purge_expired(time.time() + 200) == 5
    finally:
        purging.set_trace_callback(None)
        webhook.close()
        queue.close()
    assert len(deletes) == 3  # 2, 2, 1
    assert len(admitted) == 1
