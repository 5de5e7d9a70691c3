"""The embedded queue commits a turn's group on the event loop's own thread when the
write lock is free, and leaves to the writer thread what would make the loop wait:
a lock another writer holds, a large group, and the WAL's checkpoints."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dd0c_alert.domain.ids import new_id
from dd0c_alert.storage import group_commit, sqlite_queue
from dd0c_alert.storage.engine import make_engines
from dd0c_alert.storage.migrate import upgrade
from dd0c_alert.storage.ports import EnqueueOutcome, RawEvent
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue, queue_file


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[SqliteIngestQueue]:
    """A queue whose writer thread is not started: only the event loop can commit."""
    database = tmp_path / "dd0c.db"
    engine, _ = make_engines(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    queue = SqliteIngestQueue(queue_file(database), store=database)
    yield queue
    queue.close()


def event(body: bytes = b'{"ok": true}') -> RawEvent:
    return RawEvent(
        event_id=new_id(),
        tenant_id="T" * 26,
        integration_id="I" * 26,
        provider="custom",
        received_at=time.time(),
        headers={"content-type": "application/json"},
        body=body,
    )


async def put_within(queue: SqliteIngestQueue, events: list[RawEvent], seconds: float) -> bool:
    """Whether every put was answered within ``seconds`` (the puts go on either way)."""
    puts = asyncio.gather(*(queue.put(e) for e in events))
    done, _ = await asyncio.wait([puts], timeout=seconds)
    return bool(done)


def test_a_group_is_committed_on_the_loop_without_the_writer_thread(
    queue: SqliteIngestQueue,
) -> None:
    events = [event() for _ in range(10)]

    async def run() -> bool:
        return await put_within(queue, events, 5)

    assert asyncio.run(run())
    assert queue.depth().messages == 10


def test_while_another_writer_holds_the_lock_the_thread_waits_and_the_loop_runs_on(
    queue: SqliteIngestQueue,
) -> None:
    """The loop turns ten times while the puts wait for the lock. Counted against the
    clock (ten ticks of 10 ms within 0.3 s), it failed whenever the test process was
    descheduled for a while (a busy CI machine): the ticks are now waited for, and a
    loop held by the lock never gets to count them."""
    holder = sqlite3.connect(queue._path, isolation_level=None)  # the worker's claim, say
    holder.execute("BEGIN IMMEDIATE")
    queue.start()
    events = [event() for _ in range(5)]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def run() -> list[EnqueueOutcome]:
        ticker = asyncio.ensure_future(tick())
        puts = asyncio.gather(*(queue.put(e) for e in events))
        deadline = time.monotonic() + 30  # a guard only: this takes 0.1 s
        while ticks < 10:  # the loop runs on while the lock is taken
            assert time.monotonic() < deadline, f"the loop turned {ticks} times"
            await asyncio.sleep(0.01)
        assert not puts.done()  # nothing answered before its commit
        holder.execute("COMMIT")
        outcomes = await asyncio.wait_for(puts, 10)
        ticker.cancel()
        return list(outcomes)

    outcomes = asyncio.run(run())
    holder.close()
    assert [o.event_id for o in outcomes] == [e.event_id for e in events]
    assert queue.depth().messages == 5


def test_a_lock_held_briefly_is_waited_for_on_the_loop(
    queue: SqliteIngestQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken for less than ``BUSY_WAIT_SECONDS``: the loop asks again and commits the
    group itself (no writer thread runs here). The wait is made far longer than the
    10 ms the lock is held: at its real 50 ms, a test process descheduled for that long
    between two asks (a busy CI machine) handed the group to the thread that is not
    running, and the put never returned."""
    monkeypatch.setattr(group_commit, "BUSY_WAIT_SECONDS", 600.0)
    holder = sqlite3.connect(queue._path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def run() -> bool:
        asyncio.get_running_loop().call_later(0.01, holder.execute, "COMMIT")
        return await put_within(queue, [event(), event()], 5)

    assert asyncio.run(run())
    holder.close()
    assert queue.depth().messages == 2


def test_a_group_over_the_byte_limit_goes_to_the_writer_thread(
    queue: SqliteIngestQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_queue, "WRITE_NOW_MAX_BYTES", 1000)
    small, large = [event()], [event(b'{"pad": "' + b"x" * 600 + b'"}') for _ in range(2)]

    async def run() -> tuple[bool, bool, bool]:
        small_now = await put_within(queue, small, 5)
        puts = asyncio.gather(*(queue.put(e) for e in large))
        await asyncio.sleep(0.2)
        large_now = puts.done()
        queue.start()
        await asyncio.wait_for(puts, 10)
        return small_now, large_now, puts.done()

    assert asyncio.run(run()) == (True, False, True)
    assert queue.depth().messages == 3


def test_while_commits_on_the_loop_are_slow_the_groups_go_to_the_thread(
    queue: SqliteIngestQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_queue, "WRITE_NOW_MAX_SECONDS", 0.0)  # every commit is slow

    async def run() -> tuple[bool, bool]:
        first = await put_within(queue, [event()], 5)
        second = asyncio.ensure_future(queue.put(event()))
        done, _ = await asyncio.wait([second], timeout=0.3)
        queue.start()
        await asyncio.wait_for(second, 10)
        return first, bool(done)

    assert asyncio.run(run()) == (True, False)


def test_every_few_groups_one_goes_to_the_thread_which_keeps_the_wal_bounded(
    queue: SqliteIngestQueue,
) -> None:
    """The loop's connection never checkpoints; without the thread's turns the WAL
    would grow by every group (here to about 100 MB instead of 5)."""

    async def run() -> list[bool]:
        answered = [await put_within(queue, [event()], 5) for _ in range(sqlite_queue.THREAD_EVERY)]
        answered.append(await put_within(queue, [event()], 0.3))
        queue.start()
        body = b'{"pad": "' + b"x" * 8000 + b'"}'
        for _ in range(3000):
            await queue.put(event(body))
        return answered

    answered = asyncio.run(run())
    assert answered == [True] * sqlite_queue.THREAD_EVERY + [False]
    wal = Path(f"{queue._path}-wal")
    assert wal.stat().st_size < 12 * 1024 * 1024, wal.stat().st_size
