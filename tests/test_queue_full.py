"""The SQLite queue on a full disk: the worker's acknowledgements fail for as long as it
lasts, for each event of a batch it then stores one by one; they are logged once a
minute, not with a traceback each (SQLite's own disk-full error, through
``max_page_count``). The production mode acknowledges inside the batch's own
PostgreSQL transaction, so it has no such step."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog

from conftest import TenantHandle
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import BatchOutcome, RawEvent, Retry
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue


def test_failed_acknowledgements_on_a_full_disk_are_one_line(
    runtime: Runtime, tenant: TenantHandle
) -> None:
    queue = runtime.queue
    if not isinstance(queue, SqliteIngestQueue):
        pytest.skip("fills the SQLite queue file")
    integration = tenant.integration("alertmanager")
    events = [
        RawEvent(f"ev{n:030d}", tenant.id, integration, "alertmanager", time.time(), {}, b"{}")
        for n in range(5)
    ]
    for event in events:
        asyncio.run(queue.put(event))
    assert len(queue.claim(10, 60)) == 5
    conn = queue._conn()  # the worker side's connection, this thread's
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    # Each retry keeps its error: far more than the file's free pages hold.
    with structlog.testing.capture_logs() as logged:
        for event in events:
            queue.acknowledge(BatchOutcome(retries=[Retry(event.event_id, "x" * 50_000, 1.0)]))
    lines = [line for line in logged if line["event"] == "queue_acknowledge_failed"]
    assert len(lines) <= 1, lines  # the first, unless an earlier test's was
    conn.execute(f"PRAGMA max_page_count={1 << 30}")
    queue.acknowledge(BatchOutcome(acked=[event.event_id for event in events]))
    assert queue.depth().messages == 0  # the disk has room again: it goes through
