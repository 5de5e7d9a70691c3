"""Builds a Runtime from Settings: the one place that picks adapters.

``DATABASE_URL`` picks the store and the queue: ``sqlite://`` (the default) gives the
embedded SQLite file with its queue table; ``postgresql://`` gives PostgreSQL with
pgmq, connected as the application role that row-level security applies to.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from dd0c_alert.config import Settings
from dd0c_alert.correlation.model import TenantSettings
from dd0c_alert.notify.smtp import SmtpConfig
from dd0c_alert.pipeline.auth_config import AuthConfig
from dd0c_alert.pipeline.ingest import IngestService, Limits
from dd0c_alert.pipeline.limits import ApiLimits
from dd0c_alert.pipeline.notifier import Notifier
from dd0c_alert.pipeline.runtime import ROLES, Runtime
from dd0c_alert.pipeline.senders import NotifyConfig
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.archive import LocalArchive
from dd0c_alert.storage.engine import (
    make_engines,
    normalise_database_url,
    refresh_statistics,
    sqlite_path,
)
from dd0c_alert.storage.files import private_dir
from dd0c_alert.storage.login_throttle import MemoryLoginThrottle, RedisLoginThrottle
from dd0c_alert.storage.memory_state import MemoryCircuitBreaker, TokenBuckets
from dd0c_alert.storage.migrate import grant_app_role, upgrade
from dd0c_alert.storage.pgmq_queue import PgmqIngestQueue
from dd0c_alert.storage.ports import (
    Archive,
    CircuitBreaker,
    ClaimBudget,
    IngestQueue,
    RateLimiter,
)
from dd0c_alert.storage.redis_state import RedisCircuitBreaker, RedisLink, RedisRateLimiter
from dd0c_alert.storage.s3_archive import S3Archive
from dd0c_alert.storage.secrets import SecretBox
from dd0c_alert.storage.seen_requests import MemorySeenRequests, RedisSeenRequests
from dd0c_alert.storage.sql import SqlStore
from dd0c_alert.storage.sqlite_queue import SqliteIngestQueue, queue_file
from dd0c_alert.storage.unusable import check_database_present, check_key_present


def is_postgres(settings: Settings) -> bool:
    url = normalise_database_url(settings.resolved_database_url)
    return sa.make_url(url).get_backend_name() == "postgresql"


def migrate(settings: Settings) -> None:
    """Bring the schema to head. On PostgreSQL this runs as the owner role
    (``DD0C_MIGRATION_DATABASE_URL``) and then grants the application role (the user
    of ``DATABASE_URL``) its data rights."""
    if not is_postgres(settings):
        # Before SQLite creates a lost database anew: `migrate` was the one command that
        # turned a deleted dd0c.db into a new, empty installation.
        database = sqlite_path(settings.resolved_database_url)
        check_database_present(database, queue_file(database), settings.data_dir)
        engine, _ = make_engines(settings.resolved_database_url, settings.sqlite_synchronous)
        upgrade(engine)
        return
    owner_url = settings.migration_database_url or settings.resolved_database_url
    engine, _ = make_engines(owner_url)
    try:
        upgrade(engine)
        app_role = sa.make_url(normalise_database_url(settings.resolved_database_url)).username
        if app_role and app_role != engine.url.username:
            grant_app_role(engine, app_role)
    finally:
        engine.dispose()


def _must_be_set(variable: str) -> str:
    """Why a process on PostgreSQL refuses to start without ``variable``."""
    if variable == "DD0C_JWT_SECRET":
        why = "verify session tokens with the same key (e.g. `openssl rand -base64 48`)"
    else:
        why = "decrypt integration secrets with the same key"
    return f"{variable} must be set with PostgreSQL: every process must {why}"


def missing_shared_key(settings: Settings) -> str | None:
    """Why this process cannot start on PostgreSQL (a key every process must share is
    not set), or None. The server commands ask before they bind their port: found
    while the runtime was built, it came after the ``listening`` line, so a role
    announced itself and then exited."""
    if not is_postgres(settings):
        return None
    if not settings.secret_key:
        return _must_be_set("DD0C_SECRET_KEY")
    if not settings.jwt_secret:
        return _must_be_set("DD0C_JWT_SECRET")
    return None


def _secret_box(settings: Settings, engine: sa.Engine) -> SecretBox:
    if is_postgres(settings) and not settings.secret_key:
        raise SystemExit(_must_be_set("DD0C_SECRET_KEY"))
    key_file = settings.data_dir / "secret.key"
    if not settings.secret_key:
        check_key_present(key_file, engine)
    return SecretBox.from_config(settings.secret_key, key_file)


def jwt_secret(settings: Settings) -> str:
    """The key signing session tokens: configured, or (embedded mode only) a random
    one kept in ``<data_dir>/jwt.key`` (0600)."""
    if settings.jwt_secret:
        return settings.jwt_secret
    if is_postgres(settings):
        raise SystemExit(_must_be_set("DD0C_JWT_SECRET"))
    key_file = settings.data_dir / "jwt.key"
    if not key_file.exists():
        private_dir(key_file.parent)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return key_file.read_text().strip()


def auth_config(settings: Settings) -> AuthConfig:
    signup = settings.signup_enabled
    return AuthConfig(
        jwt_secret=jwt_secret(settings),
        signup_enabled=(not is_postgres(settings)) if signup is None else signup,
        public_url=settings.public_url,
        smtp=notify_config(settings).smtp,
        mail_from=settings.smtp_from,
    )


def open_store(settings: Settings, *, migrate_schema: bool = True) -> SqlStore:
    """The store alone (admin commands). SQLite is migrated on open; PostgreSQL only
    when a migration URL is configured, since the application role owns nothing."""
    engine, read_engine = _engines(settings, migrate_schema)
    return _store(settings, engine, read_engine)


def _engines(settings: Settings, migrate_schema: bool) -> tuple[sa.Engine, sa.Engine]:
    if not is_postgres(settings):  # before SQLite creates a lost database anew
        database = sqlite_path(settings.resolved_database_url)
        check_database_present(database, queue_file(database), settings.data_dir)
    engine, read_engine = make_engines(settings.resolved_database_url, settings.sqlite_synchronous)
    if migrate_schema:
        if not is_postgres(settings):
            upgrade(engine)
            refresh_statistics(engine)
        elif settings.migration_database_url:
            migrate(settings)
    return engine, read_engine


def _store(
    settings: Settings,
    engine: sa.Engine,
    read_engine: sa.Engine,
    queue: PgmqIngestQueue | SqliteIngestQueue | None = None,
) -> SqlStore:
    defaults = TenantSettings(governance_mode=settings.governance_mode)
    return SqlStore(
        engine,
        read_engine,
        _secret_box(settings, engine),
        defaults,
        settle=queue.settle if queue else None,
        acknowledge=queue.acknowledge if queue else None,
        monthly_quota=settings.monthly_quota,
    )


def api_limits(settings: Settings) -> ApiLimits:
    return ApiLimits(
        max_body_bytes=settings.api_max_body_bytes,
        max_topology_services=settings.max_topology_services,
        max_topology_edges=settings.max_topology_edges,
        max_matchers_per_rule=settings.max_matchers_per_rule,
        max_silences=settings.max_silences,
        max_inhibitions=settings.max_inhibitions,
        max_never_suppress_services=settings.max_never_suppress_services,
        max_routes=settings.max_routes,
        body_timeout_seconds=settings.http_body_timeout_seconds,
    )


def notify_config(settings: Settings) -> NotifyConfig:
    smtp = (
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            tls=settings.smtp_tls,
            username=settings.smtp_username or None,
            password=settings.smtp_password or None,
        )
        if settings.smtp_host
        else None
    )
    return NotifyConfig(
        public_url=settings.public_url,
        slack_api_url=settings.slack_api_url,
        smtp=smtp,
        mail_from=settings.smtp_from,
        poll_seconds=settings.notify_poll_seconds,
        coalesce_seconds=settings.notify_coalesce_seconds,
        max_attempts=settings.notify_max_attempts,
        slack_per_second=settings.notify_slack_per_second,
        escalation_check_seconds=settings.notify_escalation_check_seconds,
        lease_seconds=settings.notify_lease_seconds,
        digest_hour=settings.digest_hour if settings.digest_hour >= 0 else None,
    )


def build_runtime(
    settings: Settings,
    *,
    roles: frozenset[str] = ROLES,
    wake_consumer: Callable[[], None] | None = None,
    migrate_schema: bool = True,
) -> Runtime:
    """Everything a process needs for ``roles``. ``wake_consumer`` is told of each
    ingest commit when the worker runs in another process (``serve``'s child).
    ``migrate_schema=False``: a parent process migrated the SQLite database already
    (``serve``'s child: migrating again held the write lock for about half a second
    while webhooks were arriving)."""
    unknown = roles - ROLES
    if unknown:
        raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
    worker: Worker | None = None

    def wake_worker() -> None:
        if worker is not None:
            worker.wake()
        elif wake_consumer is not None:
            wake_consumer()

    queue: IngestQueue
    if is_postgres(settings):
        if settings.migration_database_url:
            migrate(settings)
        # One pool per process, shared by the queue and the store.
        engine, _ = make_engines(settings.resolved_database_url)
        pgmq = PgmqIngestQueue(
            engine, idempotency_ttl=settings.idempotency_ttl_seconds, on_commit=wake_worker
        )
        store = _store(settings, engine, engine, pgmq)
        queue = pgmq
    else:
        engine, read_engine = _engines(settings, migrate_schema)
        database = sqlite_path(settings.resolved_database_url)
        sqlite_queue = SqliteIngestQueue(
            queue_file(database),
            store=database,
            synchronous=settings.sqlite_synchronous,
            idempotency_ttl=settings.idempotency_ttl_seconds,
            on_commit=wake_worker,
        )
        store = _store(settings, engine, read_engine, sqlite_queue)
        queue = sqlite_queue
    archive: Archive = (
        S3Archive.from_url(
            settings.archive_url,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region,
        )
        if settings.archive_url
        else LocalArchive(settings.archive_dir)
    )
    redis = RedisLink.from_url(settings.redis_url) if settings.redis_url else None
    limiter: RateLimiter = RedisRateLimiter(redis) if redis else TokenBuckets()
    breakers: CircuitBreaker = RedisCircuitBreaker(redis) if redis else MemoryCircuitBreaker()
    if "correlate" in roles:
        worker = Worker(
            store,
            queue,
            archive,
            batch_size=settings.worker_batch_size,
            claim_budget=ClaimBudget(settings.worker_batch_bytes, settings.max_body_bytes),
            max_attempts=settings.worker_max_attempts,
            lease_seconds=settings.worker_lease_seconds,
            poll_seconds=settings.worker_poll_seconds,
            breakers=breakers,
            batch_budget_seconds=settings.worker_batch_budget_seconds,
            event_budget_seconds=settings.worker_event_budget_seconds,
            batch_target_seconds=settings.worker_batch_target_seconds,
        )
    limits = Limits(
        max_body_bytes=settings.max_body_bytes,
        claim_check_bytes=settings.claim_check_bytes,
        rate_limit_per_second=settings.rate_limit_per_second,
        monthly_quota=settings.monthly_quota,
        body_timeout_seconds=settings.http_body_timeout_seconds,
    )
    outbox = store.outbox()
    notify = notify_config(settings)
    notifier = Notifier(store, outbox, notify, breakers=breakers) if "notify" in roles else None
    if worker is not None and notifier is not None:
        worker.after_commit = notifier.wake  # a new page goes out without waiting a poll
    return Runtime(
        store=store,
        outbox=outbox,
        notify_settings=store.notify_settings(),
        notifier=notifier,
        per_tenant_metrics=settings.metrics_per_tenant,
        queue=queue,
        archive=archive,
        ingest=IngestService(store, queue, archive, limits, rate_limiter=limiter),
        worker=worker,
        roles=roles,
        sole_consumer=worker is not None and not is_postgres(settings),
        cron_interval_seconds=settings.suggest_interval_seconds,
        retention=timedelta(days=settings.retention_days) if settings.retention_days else None,
        breakers=breakers,
        redis=redis,
        api_limits=api_limits(settings),
        slack_api_url=settings.slack_api_url,
        auth=auth_config(settings),
        login_throttle=RedisLoginThrottle(redis) if redis else MemoryLoginThrottle(),
        rotation_grace=timedelta(seconds=settings.secret_rotation_grace_seconds),
        ready_queue_lag_seconds=settings.ready_queue_lag_seconds,
        notify=notify,
        test_limiter=limiter,
        slack_requests=RedisSeenRequests(redis) if redis else MemorySeenRequests(),
    )
