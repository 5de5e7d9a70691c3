"""Scheduled jobs: the ``cron`` role, or a thread beside the worker in ``serve``.

One pass purges expired webhook idempotency keys, then recomputes every tenant's
suggestions. A pass runs one interval after start, so a crash-restart loop never
turns into a job loop; one tenant's failure is logged and does not stop the others.
"""

from __future__ import annotations

import threading
import time

import structlog

from dd0c_alert.storage.ports import Store

from .suggest import run_suggestions

log = structlog.get_logger(__name__)


class Scheduler:
    def __init__(self, store: Store, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="cron", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def run(self) -> None:
        """Run passes until stopped (the ``cron`` role calls this in the foreground)."""
        while not self._stop.wait(self._interval):
            self.run_once()

    def run_once(self) -> None:
        try:
            purged = self._store.purge_idempotency_keys(time.time())
            tenants = self._store.list_tenants()
        except Exception:  # the database is away: try again next time
            log.exception("cron_failed")
            return
        if purged:
            log.info("idempotency_keys_purged", count=purged)
        for tenant in tenants:
            if self._stop.is_set():
                return
            try:
                found = run_suggestions(self._store, tenant.id)
            except Exception:
                log.exception("suggestions_failed", tenant_id=tenant.id)
            else:
                log.info("suggestions_computed", tenant_id=tenant.id, found=len(found))
        self.runs += 1
