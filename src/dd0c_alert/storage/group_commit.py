"""Group commit: many webhook handlers, one writer thread, one transaction per group.

Handlers hand their event over and wait. The writer takes everything that arrived
while it was busy and commits it in one transaction, so thousands of requests share
one fsync; each handler is answered only after the commit that holds its event (the
durability rule: 202 means committed). Both ingest queues, SQLite and pgmq, write
through one of these.

A queue whose commit is short and need not wait (SQLite's, when its lock is free) also
gives a ``write_now``: what arrived in one turn of the event loop is committed right
there, on the loop's thread, and only a group it declines goes to the writer thread.
A group that finds the lock taken asks again every half millisecond (the loop free
meanwhile, later arrivals joining it) and goes to the thread after 50 ms.
A writer thread beside a busy event loop waits for the GIL after its calls into
SQLite: under a single-alert load a 32-event commit that takes 0.75 ms alone took
4-5 ms, and the loop's thread, busy three quarters of the time, ran out of work while
every webhook waited for that commit.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from .ports import EnqueueOutcome, RawEvent

Write = Callable[[list[RawEvent]], list[EnqueueOutcome]]
#: Commit at once and return the outcomes, return None to leave it to the thread, or
#: raise LockBusy to be asked again a moment later.
WriteNow = Callable[[list[RawEvent]], list[EnqueueOutcome] | None]
#: How long a group waits on the loop for a lock another writer holds, asking every
#: ``BUSY_RETRY_SECONDS``, before the writer thread takes it over.
BUSY_WAIT_SECONDS = 0.05
BUSY_RETRY_SECONDS = 0.0005


class LockBusy(Exception):
    """``write_now`` found the lock taken."""


_Waiter = tuple[RawEvent, asyncio.Future[EnqueueOutcome], asyncio.AbstractEventLoop]


class GroupCommitWriter:
    """``write`` commits a group and returns one outcome per event, in order; if it
    raises, every waiter of the group gets the exception (the web layer answers 503).
    ``on_commit`` runs after each successful commit; ``on_exit`` when the thread ends
    (a connection the thread owned can be closed there). ``write_now``, when given,
    is tried first, on the event loop's thread, with each turn's group."""

    def __init__(
        self,
        write: Write,
        *,
        write_now: WriteNow | None = None,
        on_commit: Callable[[], None] | None = None,
        on_exit: Callable[[], None] | None = None,
    ) -> None:
        self._write = write
        self._write_now = write_now
        #: per event loop, what arrived in its current turn (each loop touches its own)
        self._turns: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
        #: per event loop, since when its groups have found the lock taken
        self._busy_since: dict[asyncio.AbstractEventLoop, float] = {}
        self._on_commit = on_commit
        self._on_exit = on_exit
        self._pending: list[_Waiter] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.batches = 0  # commits made, for metrics and benchmarks

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Commit what is pending, then stop the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    async def put(self, event: RawEvent) -> EnqueueOutcome:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[EnqueueOutcome] = loop.create_future()
        if self._write_now is None:
            self._hand_over([(event, future, loop)])
        else:
            turn = self._turns.get(loop)
            if turn is None:
                turn = self._turns[loop] = []
                # After the callbacks already due: the rest of this turn's requests.
                loop.call_soon(self._commit_turn, loop)
            turn.append((event, future, loop))
        return await future

    def _hand_over(self, waiters: list[_Waiter]) -> None:
        with self._lock:
            self._pending += waiters
        # Set already: the writer has yet to take the group, and will take this too.
        # (Setting it again notifies a condition each time: 2 % of admission's CPU.)
        if not self._wake.is_set():
            self._wake.set()

    def _commit_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._write_now is not None
        batch = self._turns.pop(loop)
        try:
            outcomes = self._write_now([event for event, _, _ in batch])
        except LockBusy:
            since = self._busy_since.setdefault(loop, loop.time())
            if loop.time() - since > BUSY_WAIT_SECONDS:
                del self._busy_since[loop]
                self._hand_over(batch)
                return
            # Ask again soon, with what arrives meanwhile; a turn already due takes it.
            later = self._turns.get(loop)
            if later is None:
                loop.call_later(BUSY_RETRY_SECONDS, self._commit_turn, loop)
            self._turns[loop] = batch + (later or [])
            return
        except Exception as exc:
            self._busy_since.pop(loop, None)
            _resolve_all([(future, exc) for _, future, _ in batch])
            return
        self._busy_since.pop(loop, None)
        if outcomes is None:
            self._hand_over(batch)
            return
        self.batches += 1
        _resolve_all(
            [(future, outcome) for (_, future, _), outcome in zip(batch, outcomes, strict=True)]
        )
        if self._on_commit is not None:
            self._on_commit()

    def _run(self) -> None:
        try:
            while True:
                if not self._stopping:  # stopping: drain without waiting for a wake-up
                    self._wake.wait()
                self._wake.clear()
                with self._lock:
                    batch, self._pending = self._pending, []
                if batch:
                    self._commit(batch)
                elif self._stopping:
                    return
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _commit(self, batch: list[_Waiter]) -> None:
        try:
            outcomes = self._write([event for event, _, _ in batch])
        except Exception as exc:  # disk full, database away: every waiter learns it
            _answer(batch, exc)
            return
        self.batches += 1
        _answer(batch, outcomes)
        if self._on_commit is not None:
            self._on_commit()


def _answer(batch: list[_Waiter], result: list[EnqueueOutcome] | Exception) -> None:
    """Resolve waiters with one thread-safe call per event loop, not one per request."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[EnqueueOutcome], Any]]]
    by_loop = defaultdict(list)
    for index, (_, future, loop) in enumerate(batch):
        value = result if isinstance(result, Exception) else result[index]
        by_loop[loop].append((future, value))
    for loop, pairs in by_loop.items():
        loop.call_soon_threadsafe(_resolve_all, pairs)


def _resolve_all(pairs: list[tuple[asyncio.Future[EnqueueOutcome], Any]]) -> None:
    for future, value in pairs:
        if future.done():
            continue
        if isinstance(value, Exception):
            future.set_exception(value)
        else:
            future.set_result(value)
