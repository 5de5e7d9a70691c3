"""A queue that cannot commit (a full disk, a lost grant). The SQLite queue's worker
acknowledgements fail for as long as it lasts, for each event of a batch then stored
one by one: logged once a minute, not with a traceback each (SQLite's own disk-full
error, through ``max_page_count``; the production mode acknowledges inside the batch's
PostgreSQL transaction, so it has no such step). /readyz says webhooks are not being
queued, in both modes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import structlog

from conftest import TenantHandle, drain
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import BatchOutcome, RawEvent, Retry
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue
from servers import APP, OWNER

ALERT = b'{"alerts": [{"status": "firing", "labels": {"alertname": "DiskFull"}}]}'


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


@contextmanager
def queue_refuses(runtime: Runtime, settings: Settings) -> Iterator[str]:
    """The queue refuses every commit while reads still work; yields what /readyz
    should quote. SQLite: the queue file full (its own disk-full error). PostgreSQL:
    the application role lost its right to insert into the queue (a grant lost in a
    restore), as the owner revokes it."""
    queue = runtime.queue
    if isinstance(queue, SqliteIngestQueue):
        writers = [w for w in [*queue._loop_conns.values(), queue._writer_conn] if w]
        for writer in writers:
            pages = writer.execute("PRAGMA page_count").fetchone()[0]
            writer.execute(f"PRAGMA max_page_count={pages}")
        yield "OperationalError: database or disk is full"
        for writer in writers:
            writer.execute(f"PRAGMA max_page_count={1 << 30}")
        return
    owner = sa.create_engine(settings.database_url.replace(f"//{APP}@", f"//{OWNER}@"))
    with owner.begin() as conn:
        conn.execute(sa.text(f"REVOKE INSERT ON pgmq.q_dd0c_ingest FROM {APP}"))
    yield "InsufficientPrivilege"
    with owner.begin() as conn:
        conn.execute(sa.text(f"GRANT INSERT ON pgmq.q_dd0c_ingest TO {APP}"))
    owner.dispose()


def test_readyz_says_webhooks_are_not_being_queued(
    runtime: Runtime, settings: Settings, client: Any, tenant: TenantHandle
) -> None:
    """Every webhook was answered 503 while /readyz said ready: its database check
    only reads."""
    integration = tenant.integration("alertmanager", "s3cret")
    url = f"/v1/wh/{tenant.id}/alertmanager/{integration}"
    auth = {"Authorization": "Bearer s3cret"}
    assert client.post(url, content=ALERT, headers=auth).status_code == 202
    assert client.get("/readyz").json()["status"] == "ready"
    labels = {f"label{n}": "x" * 200 for n in range(300)}  # needs pages of its own
    big = orjson.dumps({"alerts": [{"status": "firing", "labels": labels}]})
    with queue_refuses(runtime, settings) as why:
        assert client.post(url, content=big, headers=auth).status_code == 503
        ready = client.get("/readyz")
        assert ready.status_code == 200  # still in its load balancer: see health.py
        assert ready.json()["status"] == "degraded", ready.text
        queue = ready.json()["checks"]["queue"]
        assert queue == f"degraded: webhooks are not being queued ({why})", queue
    assert client.post(url, content=big, headers=auth).status_code == 202
    assert client.get("/readyz").json()["checks"]["queue"].startswith("ok")
    drain(runtime)
