"""The worker's loop: a backlog is worked off batch after batch, without a poll
interval's sleep between batches the adaptive claim limit made small."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
import structlog.testing
from fastapi.testclient import TestClient

from conftest import drain
from dd0c_alert.app import build_runtime
from dd0c_alert.pipeline import worker as worker_module
from dd0c_alert.pipeline.persist import persist
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.engine import make_engines
from dd0c_alert.storage.memory_state import MemoryCircuitBreaker
from dd0c_alert.storage.ports import BatchOutcome
from dd0c_alert.web.app import create_app
from test_poison_events import all_alerts, post_custom
from webhook_helpers import dead_letters, make_settings, new_tenant, stored_records

pytestmark = pytest.mark.both_modes


def test_a_backlog_drains_without_waiting_between_batches(tmp_path: Path) -> None:
    runtime = build_runtime(make_settings(tmp_path / "d"), roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        for n in range(6):
            post_custom(client, tenant, {"title": f"backlog {n}", "service": "s"})
        # A poll interval no test could sit through: the loop must not wait while the
        # queue still holds events, whatever the claim limit (it starts at one).
        worker = Worker(runtime.store, runtime.queue, runtime.archive, poll_seconds=3600)
        waited_with: list[int] = []

        def pause(seconds: float) -> None:
            waited_with.append(runtime.queue.depth().messages)
            worker.stop()

        worker.pause = pause  # type: ignore[method-assign]
        worker.run()
        assert waited_with == [0]
        assert worker.processed == 6


def test_an_archive_outage_longer_than_the_retries_dead_letters_nothing(tmp_path: Path) -> None:
    """Disk full under the archive, or the object store down: no event can be archived,
    so none can be processed, whatever it holds. Such events go back to the queue
    without the claim counting as one of their attempts, and are processed once the
    archive is back. Counted, an outage of half a minute (five tries with backoff)
    dead-lettered every alert accepted meanwhile: none paged until someone replayed
    them."""
    data = tmp_path / "d"
    runtime = build_runtime(make_settings(data), roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        for n in range(3):
            post_custom(client, tenant, {"title": f"during the outage {n}", "service": "s"})
        archive = data / "archive"
        shutil.rmtree(archive, ignore_errors=True)
        data.mkdir(exist_ok=True)  # in the production pass the database is elsewhere
        archive.write_text("a file where the archive folder was: nothing can be written")
        worker = _worker_through_an_outage(runtime)
        assert dead_letters(runtime, tenant.id) == []
        assert runtime.queue.depth().messages == 3
        assert "archive" in (worker.last_error or "")

        archive.unlink()
        _drain_with(worker, runtime)
        assert dead_letters(runtime, tenant.id) == []
        assert len(stored_records(runtime, tenant.id)) == 3


def test_claim_checked_bodies_wait_out_an_archive_outage_instead_of_dead_lettering(
    tmp_path: Path,
) -> None:
    """Admission puts a large body in the archive and queues only its reference (the
    claim check). While the archive cannot be read, each such event failed a counted
    try: an outage longer than the retries dead-lettered them, and their alerts paged
    nobody until someone replayed them. They now go back to the queue uncounted, as
    events do when the archive cannot be written."""
    data = tmp_path / "d"
    runtime = build_runtime(
        make_settings(data, claim_check_bytes=64), roles=frozenset({"ingest", "api"})
    )
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        for n in range(2):
            post_custom(client, tenant, {"title": f"large {n}", "description": "x" * 200})
        post_custom(client, tenant, {"title": "small", "service": "s"})
        archive = data / "archive"
        hidden = data / "archive-away"
        archive.rename(hidden)
        data.mkdir(exist_ok=True)  # in the production pass the database is elsewhere
        archive.write_text("a file where the archive folder was: nothing can be read")
        worker = _worker_through_an_outage(runtime)
        assert dead_letters(runtime, tenant.id) == []
        assert runtime.queue.depth().messages == 3
        assert "archive" in (worker.last_error or "")

        archive.unlink()
        hidden.rename(archive)
        _drain_with(worker, runtime)
        assert dead_letters(runtime, tenant.id) == []
        assert len(stored_records(runtime, tenant.id)) == 3


def _worker_through_an_outage(runtime: Runtime) -> Worker:
    """A worker that tries two counted times, run for over twice as long as those
    take while the archive is away (the caller made it so)."""
    worker = Worker(
        runtime.store,
        runtime.queue,
        runtime.archive,
        max_attempts=2,
        lease_seconds=0.2,
        breakers=MemoryCircuitBreaker(threshold=1, cooldown_seconds=0.05),
    )
    outage_ends = time.monotonic() + 4
    while time.monotonic() < outage_ends:
        worker.run_once()
        time.sleep(0.02)
    return worker


def _drain_with(worker: Worker, runtime: Runtime) -> None:
    deadline = time.monotonic() + 10
    while runtime.queue.depth().messages:
        assert time.monotonic() < deadline, runtime.queue.depth()
        worker.run_once()


def test_a_dead_letter_of_a_transient_failure_says_what_failed_first(tmp_path: Path) -> None:
    """`dlq list`, the dashboard and the worker's log line show a dead letter's first
    line: it names the error, with the traceback after it. It was the traceback's
    own first line, "Traceback (most recent call last):", for every such dead letter."""
    data = tmp_path / "d"
    runtime = build_runtime(
        make_settings(data, claim_check_bytes=64), roles=frozenset({"ingest", "api"})
    )
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        post_custom(client, tenant, {"title": "claim-checked", "description": "x" * 200})
        for stored in (data / "archive").rglob("*"):
            if stored.is_file():
                stored.unlink()  # the body's only copy: gone (a restore without the archive)
        worker = Worker(runtime.store, runtime.queue, runtime.archive, max_attempts=1)
        worker.run_once()
        [dead] = dead_letters(runtime, tenant.id)
        first, *rest = dead["error"].splitlines()
        assert first.startswith("FileNotFoundError: "), dead["error"]
        assert any(line.startswith("Traceback") for line in rest)


def test_a_batch_of_costly_events_hands_back_its_rest_so_another_tenant_gets_its_turn(
    tmp_path: Path,
) -> None:
    """Cheap traffic grows the claim limit; a storm of large webhooks then fills one
    claim. The claim limit only shrank after that batch, so another tenant's alert
    posted meanwhile waited for all of it (40 s seen against `serve`, minutes possible
    with 500 events of thousands of alerts). A batch past its time target hands its
    unstarted events back after a transaction, and the next claim takes turns."""
    runtime = build_runtime(make_settings(tmp_path / "d"), roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        noisy, quiet = new_tenant(runtime, "noisy"), new_tenant(runtime, "quiet")
        worker = Worker(
            runtime.store,
            runtime.queue,
            runtime.archive,
            batch_target_seconds=0.2,
            poll_seconds=0.02,
        )
        worker.batch_limit = 64  # where a stream of cheap events leaves it
        storm, size = 8, 2000
        for n in range(storm):
            post_custom(
                client,
                noisy,
                [{"title": f"storm {n}-{k}", "service": f"s{k % 9}"} for k in range(size)],
            )
        # The quiet tenant's alert arrives once the storm's first batch has committed
        # (its claim made before), whatever the machine's speed: in the worker's own
        # after-batch hook, not by a sleeping test thread the worker may starve.
        # Counted between batches too, in the same hook: the storm's alerts stored by
        # the batch that decided the quiet one.
        posted_after: list[int] = []
        ahead: list[int] = []

        def between_batches() -> None:
            if not posted_after:
                posted_after.append(len(all_alerts(runtime, noisy.id)))
                post_custom(client, quiet, {"title": "checkout down", "severity": "critical"})
            elif not ahead and stored_records(runtime, quiet.id):
                ahead.append(len(all_alerts(runtime, noisy.id)))

        worker.after_commit = between_batches
        worker.start()
        try:
            drain(runtime, timeout=120)
        finally:
            worker.stop()
        assert posted_after[0] < storm * size  # the first batch did not take all of it
        # Decided before the storm's last event, however fast the machine: each batch
        # of it stops at its first transaction past the target.
        assert ahead and ahead[0] < storm * size, f"{ahead} of the storm's alerts went first"
        assert dead_letters(runtime, noisy.id) == []
        assert runtime.queue.depth().messages == 0


def test_a_lasting_failure_is_logged_once_a_minute_not_at_every_poll(tmp_path: Path) -> None:
    """A queue that cannot be read (its disk gone, its database away) failed every
    poll with a traceback: 120 lines a minute, more than the failure ever said."""
    runtime = build_runtime(make_settings(tmp_path / "d"), roles=frozenset({"ingest", "api"}))
    worker = Worker(runtime.store, runtime.queue, runtime.archive, poll_seconds=0.001)
    tries: list[int] = []

    def claim(limit: int, lease: float, budget: object = None) -> list[object]:
        tries.append(limit)
        if len(tries) == 50:
            worker.stop()
        raise OSError(28, "No space left on device")

    worker._queue.claim = claim  # type: ignore[method-assign,assignment]
    with structlog.testing.capture_logs() as logged:
        worker.run()
    lines = [e for e in logged if e["event"] == "worker_batch_failed"]
    assert len(tries) == 50 and len(lines) <= 1  # the first, unless another test's was
    assert "No space left" in (worker.last_error or "")


def test_a_batch_that_keeps_failing_is_logged_once_a_minute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch whose transaction fails is stored one event at a time, and said so in
    the log with its traceback: once per batch, unthrottled, a cause that lasts (or a
    sender who can make it happen) wrote a traceback twice a second."""
    runtime = build_runtime(make_settings(tmp_path / "d"), roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        for n in range(4):
            post_custom(client, tenant, {"title": f"failing batch {n}", "service": "s"})
        worker = Worker(runtime.store, runtime.queue, runtime.archive)
        worker.batch_limit = 2

        def fail_batches(store: Any, outcome: BatchOutcome, *args: Any) -> Any:
            if len(outcome.acked) > 1:
                raise RuntimeError("the batch's transaction failed")
            return persist(store, outcome, *args)

        monkeypatch.setattr(worker_module, "persist", fail_batches)
        with structlog.testing.capture_logs() as logged:
            assert worker.run_once() == 2
            assert worker.run_once() == 2
        events = [e["event"] for e in logged]
        assert events.count("batch_apply_failed") == 1, events
        assert len(stored_records(runtime, tenant.id)) == 4  # one by one, all of them


def test_a_failing_statement_keeps_its_parameters_out_of_the_error(tmp_path: Path) -> None:
    """SQLAlchemy puts a failed statement's parameters (alert titles, labels) in the
    exception's text, and so in every logged traceback."""
    engine, _ = make_engines(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa.exc.OperationalError) as failed, engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM no_such_table WHERE x = :v"), {"v": "label-42"})
    assert "label-42" not in str(failed.value)
