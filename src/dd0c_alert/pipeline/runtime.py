"""The running parts of one process, started and stopped together.

A process runs one or more roles (design §1): ``ingest`` admits webhooks and writes
the queue, ``correlate`` consumes it, ``notify`` delivers the notification outbox,
``api`` serves the REST API, ``cron`` runs the scheduled jobs. ``serve`` runs them all
in one process.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from dd0c_alert.roles import ROLES as ALL_ROLES
from dd0c_alert.storage.login_throttle import LoginThrottle, MemoryLoginThrottle
from dd0c_alert.storage.memory_state import MemoryCircuitBreaker, TokenBuckets
from dd0c_alert.storage.notify_settings import SqlNotifySettings
from dd0c_alert.storage.outbox import SqlOutbox
from dd0c_alert.storage.ports import (
    Archive,
    CircuitBreaker,
    Degradable,
    IngestQueue,
    RateLimiter,
    Store,
)
from dd0c_alert.storage.seen_requests import MemorySeenRequests, SeenRequests

from .auth_config import AuthConfig
from .cron import Scheduler
from .ingest import IngestService
from .limits import ApiLimits
from .notifier import Notifier
from .senders import NotifyConfig, Senders
from .worker import Worker

ROLES = ALL_ROLES


@dataclass
class Runtime:
    store: Store
    outbox: SqlOutbox
    #: Routes and Slack settings, as the API and the dashboard change them.
    notify_settings: SqlNotifySettings
    queue: IngestQueue
    archive: Archive
    ingest: IngestService
    worker: Worker | None  # None unless the process runs the ``correlate`` role
    notifier: Notifier | None = None  # None unless the process runs the ``notify`` role
    roles: frozenset[str] = field(default=ROLES)
    #: A single embedded worker owns the queue (and its notifier the outbox), so leases
    #: left by a crash can be released at once instead of waiting for them to expire.
    sole_consumer: bool = False
    #: How often the scheduled jobs run in the ``cron`` role; 0 disables them.
    cron_interval_seconds: float = 0.0
    #: How long records and raw payloads are kept; None keeps everything.
    retention: timedelta | None = None
    scheduler: Scheduler | None = None
    #: Circuit breakers around outbound calls (notifiers, archive uploads).
    breakers: CircuitBreaker = field(default_factory=MemoryCircuitBreaker)
    #: The Redis behind rate limits and breakers; None when they live in process memory.
    redis: Degradable | None = None
    #: A webhook counter per tenant in ``/metrics`` (off: one series per tenant).
    per_tenant_metrics: bool = False
    #: Caps on what one tenant may ask of the REST API.
    api_limits: ApiLimits = field(default_factory=ApiLimits)
    #: The Slack Web API the API role checks bot tokens against (``DD0C_SLACK_API_URL``).
    slack_api_url: str = "https://slack.com/api/"
    #: Sessions, sign-up and mailed links (``DD0C_JWT_SECRET`` etc.).
    auth: AuthConfig = field(default_factory=lambda: AuthConfig(jwt_secret=secrets.token_hex(32)))
    #: Whether ``serve``'s child process (worker, notifier, jobs) runs; None elsewhere.
    background_alive: Callable[[], bool] | None = None
    #: Failed logins, in Redis when there is one.
    login_throttle: LoginThrottle = field(default_factory=MemoryLoginThrottle)
    #: How long a rotated-out integration secret is still accepted.
    rotation_grace: timedelta = timedelta(hours=24)
    #: Each scheduled pass in a child process (``serve``'s, beside the worker).
    cron_pass_process: bool = False
    #: Readiness degrades while the queue's oldest event is older than this: a worker
    #: that is alive but makes no progress (frozen, wedged, too few) shows only here.
    ready_queue_lag_seconds: float = 60.0
    #: How the senders are built (``DD0C_SMTP_*``, Slack API, timeouts): the API role
    #: sends test notifications with the notifier's own construction.
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    #: Token buckets of test notifications (in Redis when there is one), so a test
    #: cannot be used to spam a channel or probe the network.
    test_limiter: RateLimiter = field(default_factory=TokenBuckets)
    #: Slack requests already acted on (in Redis when there is one): a captured
    #: request replayed within its 5 minutes is refused, in whichever process.
    slack_requests: SeenRequests = field(default_factory=MemorySeenRequests)

    def senders(self) -> Senders:
        return Senders(self.outbox, self.notify)

    def start(self) -> None:
        if self.sole_consumer:
            self.queue.release_leases()
            if self.notifier is not None:
                # A page in flight when the last process died would otherwise wait out
                # DD0C_NOTIFY_LEASE_SECONDS (5 minutes); its Slack post mark still makes
                # the retry look for the message before posting again.
                self.outbox.release_leases()
        if "ingest" in self.roles:
            self.queue.start()
        if self.worker is not None:
            self.worker.start()
        if self.notifier is not None:
            self.notifier.start()
        if "cron" in self.roles and self.cron_interval_seconds > 0:
            self.scheduler = Scheduler(
                self.store,
                self.cron_interval_seconds,
                self.archive,
                self.retention,
                queue=self.queue,
                separate_process=self.cron_pass_process,
            )
            self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        self.queue.close()  # flush what was admitted before stopping the consumer
        if self.worker is not None:
            self.worker.stop()
        if self.notifier is not None:
            self.notifier.stop()
        if self.redis is not None:
            self.redis.close()
        self.store.close()
