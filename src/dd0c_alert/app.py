"""Builds a Runtime from Settings: the one place that picks adapters."""

from __future__ import annotations

from dd0c_alert.config import Settings
from dd0c_alert.correlation.model import TenantSettings
from dd0c_alert.pipeline.ingest import IngestService, Limits
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.archive import LocalArchive
from dd0c_alert.storage.engine import make_engines, sqlite_path
from dd0c_alert.storage.migrate import upgrade
from dd0c_alert.storage.secrets import SecretBox
from dd0c_alert.storage.sql import SqlStore
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue


def open_store(settings: Settings, *, migrate: bool = True) -> SqlStore:
    engine, read_engine = make_engines(settings.resolved_database_url, settings.sqlite_synchronous)
    if migrate:
        upgrade(engine)
    box = SecretBox.from_config(settings.secret_key, settings.data_dir / "secret.key")
    defaults = TenantSettings(governance_mode=settings.governance_mode)
    return SqlStore(engine, read_engine, box, defaults)


def build_runtime(settings: Settings, *, with_worker: bool = True) -> Runtime:
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        raise SystemExit("only sqlite:// is supported in this version (PostgreSQL is coming)")
    store = open_store(settings)
    archive = LocalArchive(settings.archive_dir)
    worker: Worker | None = None
    queue = SqliteIngestQueue(
        sqlite_path(url),
        synchronous=settings.sqlite_synchronous,
        idempotency_ttl=settings.idempotency_ttl_seconds,
        on_commit=lambda: worker.wake() if worker is not None else None,
    )
    if with_worker:
        worker = Worker(
            store,
            queue,
            archive,
            batch_size=settings.worker_batch_size,
            max_attempts=settings.worker_max_attempts,
            lease_seconds=settings.worker_lease_seconds,
            poll_seconds=settings.worker_poll_seconds,
        )
    limits = Limits(
        max_body_bytes=settings.max_body_bytes,
        claim_check_bytes=settings.claim_check_bytes,
        rate_limit_per_second=settings.rate_limit_per_second,
        monthly_quota=settings.monthly_quota,
    )
    ingest = IngestService(store, queue, archive, limits)
    return Runtime(
        store=store,
        queue=queue,
        archive=archive,
        ingest=ingest,
        worker=worker,
        sole_consumer=with_worker,
        suggest_interval_seconds=settings.suggest_interval_seconds,
    )
