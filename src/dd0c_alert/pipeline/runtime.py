"""The running parts of one process, started and stopped together."""

from __future__ import annotations

from dataclasses import dataclass

from dd0c_alert.storage.ports import Archive, IngestQueue, Store

from .ingest import IngestService
from .suggest import SuggestionScheduler
from .worker import Worker


@dataclass
class Runtime:
    store: Store
    queue: IngestQueue
    archive: Archive
    ingest: IngestService
    worker: Worker | None  # None in a process that only receives (the ``ingest`` role)
    #: A single embedded worker owns the queue, so leases left by a crash can be
    #: released at once instead of waiting for them to expire.
    sole_consumer: bool = False
    #: Scheduled jobs run beside the worker (embedded mode); 0 disables them.
    suggest_interval_seconds: float = 0.0
    scheduler: SuggestionScheduler | None = None

    def start(self) -> None:
        if self.sole_consumer:
            self.queue.release_leases()
        self.queue.start()
        if self.worker is not None:
            self.worker.start()
            if self.suggest_interval_seconds > 0:
                self.scheduler = SuggestionScheduler(self.store, self.suggest_interval_seconds)
                self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        self.queue.close()  # flush what was admitted before stopping the consumer
        if self.worker is not None:
            self.worker.stop()
