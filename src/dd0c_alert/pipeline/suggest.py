"""The suggestion job (design §6.9): read a tenant's history, let the pure core propose,
store the proposals for a person to accept or dismiss. Also the in-process scheduler
that runs it periodically in the embedded mode."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import structlog

from dd0c_alert.correlation.suggestions import Suggestion, suggest
from dd0c_alert.storage.ports import Store, SuggestionVerdict

log = structlog.get_logger(__name__)


def run_suggestions(store: Store, tenant_id: str, now: datetime | None = None) -> list[Suggestion]:
    """Compute one tenant's suggestions from its history and upsert them; return what
    the history supports now (stored ones a person already decided stay decided)."""
    now = now or datetime.now(UTC)
    settings, rules = store.tenant_config(tenant_id)
    found = suggest(store.suggestion_history(tenant_id, now), settings, rules)
    store.save_suggestions(tenant_id, found, now)
    return found


def accept(store: Store, tenant_id: str, suggestion_id: str) -> SuggestionVerdict | None:
    return store.accept_suggestion(tenant_id, suggestion_id, datetime.now(UTC))


def dismiss(store: Store, tenant_id: str, suggestion_id: str) -> SuggestionVerdict | None:
    return store.dismiss_suggestion(tenant_id, suggestion_id, datetime.now(UTC))


class SuggestionScheduler:
    """Runs the job for every tenant every ``interval`` seconds, first one interval
    after start (a restart loop must not turn into a job loop). One tenant's failure
    is logged and does not stop the others."""

    def __init__(self, store: Store, interval: float) -> None:
        self._store = store
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="suggestions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()

    def run_once(self) -> None:
        try:
            tenants = self._store.list_tenants()
        except Exception:  # the database is away: try again next time
            log.exception("suggestions_failed")
            return
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
