"""What the pipeline and the web layer need from storage, as Protocols.

Adapters (SQLite today, PostgreSQL + pgmq next) implement these; the pure core never
sees them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, FoldResult
from dd0c_alert.correlation.engine import EngineState
from dd0c_alert.correlation.model import Decision, DeployRef, Rules, TenantSettings
from dd0c_alert.domain.models import CanonicalAlert, DeployEvent


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: datetime
    rate_limit_per_second: float | None = None
    monthly_quota: int | None = None


@dataclass(frozen=True, slots=True)
class Integration:
    id: str
    tenant_id: str
    provider: str
    name: str
    secret: str  # decrypted; never logged
    created_at: datetime

    def __repr__(self) -> str:  # keep the secret out of tracebacks and logs
        return (
            f"Integration(id={self.id!r}, tenant_id={self.tenant_id!r}, provider={self.provider!r})"
        )


@dataclass(slots=True)
class RawEvent:
    """One accepted webhook delivery, exactly as received (credentials stripped).

    ``body`` is inline unless it was larger than the claim-check threshold, in which
    case it sits in the archive under ``body_ref``.
    """

    event_id: str
    tenant_id: str
    integration_id: str
    provider: str
    received_at: float
    headers: dict[str, str]
    body: bytes | None
    body_ref: str | None = None
    idempotency_key: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class EnqueueOutcome:
    event_id: str
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Retry:
    event_id: str
    error: str
    delay_seconds: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    event: RawEvent
    error: str


@dataclass(slots=True)
class BatchOutcome:
    """Everything one worker batch produced, applied in a single transaction
    together with the acknowledgement of the queue messages it consumed."""

    acked: list[str] = field(default_factory=list)
    alerts: list[CanonicalAlert] = field(default_factory=list)
    deploys: list[DeployEvent] = field(default_factory=list)
    retries: list[Retry] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class AlertFilter:
    source: str | None = None
    status: str | None = None
    service: str | None = None
    fingerprint: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    messages: int
    oldest_age_seconds: float


class IngestQueue(Protocol):
    """Durable hand-off from ingestion to processing."""

    async def put(self, event: RawEvent) -> EnqueueOutcome:
        """Return only after the event is committed (or found to be a duplicate)."""

    def claim(self, limit: int, lease_seconds: float) -> list[RawEvent]:
        """Lease up to ``limit`` visible events; unacknowledged ones reappear after the lease."""

    def requeue(self, event: RawEvent) -> None:
        """Enqueue again (dead-letter replay); a no-op if the event is still queued."""

    def release_leases(self) -> None:
        """Make every leased event visible now (single-worker restart after a crash)."""

    def depth(self) -> QueueDepth: ...

    def start(self) -> None: ...

    def close(self) -> None: ...


class Transaction(Protocol):
    """One atomic unit of the worker's writes: read the state the pure core needs,
    write what it decided, acknowledge the queue messages, commit together."""

    def fingerprint_states(
        self, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], FingerprintState]:
        """The active and latest ended occurrence of each (tenant, fingerprint)."""

    def save_alerts(self, created: list[AlertRecord], updated: list[AlertRecord]) -> None: ...

    def save_deploys(self, deploys: list[DeployEvent]) -> list[DeployRef]:
        """Insert, or fold status updates into the deploy with the same source_ref;
        return the stored deploys."""

    def correlation_state(
        self,
        tenant_id: str,
        settings: TenantSettings,
        rules: Rules,
        folds: Sequence[FoldResult],
        deploys: Sequence[DeployRef],
    ) -> EngineState:
        """The incidents near the batch in event time, recent deploys, history."""

    def save_correlation(
        self, state: EngineState, pairs: Sequence[tuple[FoldResult, Decision]]
    ) -> None:
        """Persist touched incidents, merges and one decision per alert."""

    def finish(self, outcome: BatchOutcome) -> None:
        """Dead-letter, schedule retries and acknowledge the batch's queue messages."""


class Store(Protocol):
    """Tenants, integrations, processed records and dead letters."""

    def create_tenant(self, name: str) -> Tenant: ...

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def create_api_key(self, tenant_id: str, name: str) -> str:
        """Return the new key; only its hash is stored."""

    def tenant_for_api_key(self, key: str) -> str | None: ...

    def create_integration(
        self, tenant_id: str, provider: str, name: str, secret: str
    ) -> Integration: ...

    def integrations_for(self, tenant_id: str, provider: str) -> list[Integration]: ...

    def events_this_month(self, tenant_id: str) -> int: ...

    def tenant_config(self, tenant_id: str) -> tuple[TenantSettings, Rules]:
        """The tenant's correlation settings and human-made rules."""

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A Transaction that commits on normal exit and rolls back on error."""

    def list_alerts(
        self, tenant_id: str, filters: AlertFilter, limit: int, cursor: str | None
    ) -> Page: ...

    def get_alert(self, tenant_id: str, alert_id: str) -> dict[str, Any] | None: ...

    def list_deploys(
        self, tenant_id: str, filters: AlertFilter, limit: int, cursor: str | None
    ) -> Page: ...

    def list_dead_letters(self, tenant_id: str | None, limit: int) -> list[dict[str, Any]]: ...

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None: ...

    def mark_replayed(self, dead_letter_id: str) -> None: ...

    def purge_idempotency_keys(self, now: float) -> int: ...

    def ping(self) -> None: ...


class Archive(Protocol):
    """Raw payloads, kept for audit and replay."""

    def put(self, key: str, data: bytes, *, durable: bool = False) -> None: ...

    def put_segment(self, key: str, payloads: list[bytes]) -> list[str]:
        """Store payloads together; return a reference to each for ``get``."""

    def get(self, ref: str) -> bytes: ...
