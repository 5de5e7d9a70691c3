"""The running parts of one process, started and stopped together."""

from __future__ import annotations

from dataclasses import dataclass

from dd0c_alert.storage.ports import Archive, IngestQueue, Store

from .ingest import IngestService
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

    def start(self) -> None:
        if self.sole_consumer:
            self.queue.release_leases()
        self.queue.start()
        if self.worker is not None:
            self.worker.start()

    def stop(self) -> None:
        self.queue.close()  # flush what was admitted before stopping the consumer
        if self.worker is not None:
            self.worker.stop()
