"""Scheduled jobs: the ``cron`` role, or a thread beside the worker in ``serve``.

One pass purges expired webhook idempotency keys (the queue's), refreshes the query planner's
statistics, then per tenant purges what is past retention (records and raw payloads),
lists each completed day's top fingerprints (``storage.top_daily``, for analytics) and
recomputes the suggestions. A pass runs one
interval after start, so a crash-restart loop never turns into a job loop; one
tenant's failure is logged and does not stop the others.

Beside ``serve``'s worker, each pass runs in a process of its own (``cron-pass``): a
suggestion pass reads up to 200,000 alerts and peaks near 115 MB of Python objects.
In the worker's process that held the interpreter for seconds (a 2,000 events/s soak
saw its queue lag reach 3.7 s), and the allocators kept part of each peak, so the
process grew with every pass. A process that exits gives all of it back.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import structlog

from dd0c_alert.domain.plans import plan_named
from dd0c_alert.storage.ports import Archive, IngestQueue, Store
from dd0c_alert.supervisor import spawn_linked, stop_process

from .background import Background
from .suggest import run_suggestions

log = structlog.get_logger(__name__)


def retention_for(plan: str | None, operator: timedelta | None) -> timedelta | None:
    """The tenant's plan's retention (``free``: 7 days), else the operator's."""
    days = plan_named(plan).retention_days
    return timedelta(days=days) if days is not None else operator


class Scheduler(Background):
    THREAD_NAME = "cron"

    def __init__(
        self,
        store: Store,
        interval: float,
        archive: Archive | None = None,
        retention: timedelta | None = None,
        queue: IngestQueue | None = None,
        *,
        separate_process: bool = False,
    ) -> None:
        super().__init__()
        self._separate = separate_process
        self._store = store
        self._queue = queue
        self._interval = interval
        self._archive = archive
        self._retention = retention
        self.runs = 0

    def run(self) -> None:
        """Run passes until stopped (the ``cron`` role calls this in the foreground)."""
        while not self._stop.wait(self._interval):
            if self._separate:
                self._run_pass_process()
            else:
                self.run_once()

    def _run_pass_process(self) -> None:
        """One pass in a child process (``dd0c-alert cron-pass``), stopped with this one
        and exiting by itself if this one dies (``spawn_linked``)."""
        proc, link = spawn_linked("cron-pass", "--parent-fd")
        try:
            while proc.poll() is None:
                if self._stop.wait(0.2):
                    stop_process(proc, 10)
                    return
        finally:
            os.close(link)
        if proc.returncode == 0:
            self.runs += 1
        else:
            log.error("cron_pass_failed", exit_code=proc.returncode)

    def run_once(self) -> None:
        started = time.monotonic()
        spent: dict[str, float] = {}
        try:
            with _timed(spent, "idempotency_keys"):
                purged = self._queue.purge_expired(time.time()) if self._queue else 0
            with _timed(spent, "statistics"):
                self._store.refresh_statistics()
            tenants = self._store.list_tenants()
        except Exception:  # the database is away: try again next time
            log.exception("cron_failed")
            return
        if purged:
            log.info("idempotency_keys_purged", count=purged)
        for tenant in tenants:
            if self._stop.is_set():
                return
            with _timed(spent, "retention"):
                self._purge(tenant.id, retention_for(tenant.plan, self._retention))
            try:
                with _timed(spent, "top_days"):
                    listed = self._store.product().list_top_days(tenant.id)
            except Exception:
                log.exception("top_days_failed", tenant_id=tenant.id)
            else:
                if listed:
                    log.info("top_days_listed", tenant_id=tenant.id, days=listed)
            try:
                with _timed(spent, "suggestions"):
                    found = run_suggestions(self._store, tenant.id)
            except Exception:
                log.exception("suggestions_failed", tenant_id=tenant.id)
            else:
                log.info("suggestions_computed", tenant_id=tenant.id, found=len(found))
        self.runs += 1
        # Where a slow pass spent its time: each step holds the store's write lock or
        # its reads for a while, and a queue lag during a pass is traced here.
        log.info(
            "cron_pass_finished",
            tenants=len(tenants),
            seconds=round(time.monotonic() - started, 3),
            **{f"{step}_s": round(seconds, 3) for step, seconds in spent.items()},
        )

    def _purge(self, tenant_id: str, retention: timedelta | None) -> None:
        if retention is None:
            return
        cutoff = datetime.now(UTC) - retention
        try:
            records = self._store.purge_expired(tenant_id, cutoff)
            payloads = self._archive.purge_before(tenant_id, cutoff) if self._archive else 0
        except Exception:
            log.exception("retention_failed", tenant_id=tenant_id)
        else:
            if payloads or any(records.values()):
                log.info("retention_purged", tenant_id=tenant_id, archive=payloads, **records)


@contextlib.contextmanager
def _timed(spent: dict[str, float], step: str) -> Iterator[None]:
    """Add the time the block took to ``spent[step]``, across tenants."""
    started = time.monotonic()
    try:
        yield
    finally:
        spent[step] = spent.get(step, 0.0) + time.monotonic() - started
