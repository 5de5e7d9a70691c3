"""What the pipeline and the web layer need from storage, as Protocols.

Adapters (SQLite today, PostgreSQL + pgmq next) implement these; the pure core never
sees them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, FoldResult
from dd0c_alert.correlation.engine import EngineState
from dd0c_alert.correlation.model import (
    Decision,
    DeployRef,
    InhibitRule,
    Rules,
    Silence,
    TenantSettings,
)
from dd0c_alert.correlation.suggestions import History, Suggestion
from dd0c_alert.domain.models import CanonicalAlert, DeployEvent

if TYPE_CHECKING:
    from .accounts import AccountStore
    from .product_sql import ProductStore


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    name: str
    created_at: datetime
    rate_limit_per_second: float | None = None
    monthly_quota: int | None = None
    plan: str | None = None


@dataclass(frozen=True, slots=True)
class Integration:
    id: str
    tenant_id: str
    provider: str
    name: str
    secret: str  # decrypted; never logged
    created_at: datetime
    enabled: bool = True
    #: The secret before the last rotation, accepted until ``previous_secret_until``.
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None

    def secrets_at(self, now: datetime) -> list[str]:
        """The secrets a delivery may prove at ``now``: the current one, and the
        previous one during its grace period."""
        found = [self.secret]
        until = self.previous_secret_until
        if self.previous_secret and until is not None and now < until:
            found.append(self.previous_secret)
        return found

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
    #: False gives the claim back: this try does not count toward the event's attempts
    #: (it failed for want of a shared resource, the archive, not because of itself).
    counted: bool = True


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
class IncidentFilter:
    status: str | None = None
    severity: str | None = None
    service: str | None = None
    since: datetime | None = None  # on the incident's first event time
    until: datetime | None = None
    source: str | None = None  # any of its alerts
    q: str | None = None  # text in its title, services or alert labels


IncidentAction = Literal["ack", "resolve", "snooze", "reopen"]
Verdict = Literal["noise", "useful"]
#: ``suppressed``: a rule stopped delivery (strict mode); ``would_suppress``: audit mode.
SuppressionMode = Literal["suppressed", "would_suppress"]
RuleKind = Literal["silence", "inhibition"]


class SchemaBehind(Exception):
    """The database's schema lacks a migration this version needs; the message says
    which and what to run."""


class LeaseLost(Exception):
    """Messages a worker processed were taken over by another consumer (their
    visibility timeout ended first). Nothing of the batch may commit: the other
    consumer's processing will."""


class InvalidTransition(Exception):
    """The object's current state does not allow what was asked (409 in the API)."""


class RotationInProgress(Exception):
    """An integration's secret was rotated and its previous secret is still accepted
    (409 in the API): rotating again would end that secret's promised grace early,
    refusing a sender still on it before the time the first rotation announced."""

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"the secret was rotated already and the previous one is accepted until "
            f"{until.isoformat()}; rotate again after that time"
        )
        self.until = until


@dataclass(frozen=True, slots=True)
class ClaimBudget:
    """How much event body one claim may bring into memory (``fair_claim``).

    A claim-checked body's size is not in the queue (only its archive key is): it
    counts as ``unread_body_bytes``, the largest body admission takes."""

    max_bytes: int
    unread_body_bytes: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    messages: int
    oldest_age_seconds: float


class IngestQueue(Protocol):
    """Durable hand-off from ingestion to processing."""

    async def put(self, event: RawEvent) -> EnqueueOutcome:
        """Return only after the event is committed (or found to be a duplicate)."""

    def claim(
        self, limit: int, lease_seconds: float, budget: ClaimBudget | None = None
    ) -> list[RawEvent]:
        """Lease up to ``limit`` visible events (and, with a ``budget``, no more body
        than it allows); unacknowledged ones reappear after the lease."""

    def requeue(self, event: RawEvent) -> None:
        """Enqueue again (dead-letter replay); a no-op if the event is still queued."""

    def release_leases(self) -> None:
        """Make every leased event visible now (single-worker restart after a crash)."""

    def acknowledge(self, outcome: BatchOutcome) -> None:
        """After the worker's transaction committed: let go of what it settled (a queue
        that settles inside that transaction has nothing left to do)."""

    def events_this_month(self, tenant_id: str) -> int:
        """Webhook deliveries admitted this month."""

    def purge_expired(self, now: float) -> int:
        """Delete expired idempotency keys (scheduled jobs); return how many went."""

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
        stored: Set[str],
    ) -> EngineState:
        """The incidents near the batch in event time, recent deploys, and the history
        of those of the batch's fingerprints that ``stored`` names (the others have no
        stored occurrence, so no history to read)."""

    def save_correlation(
        self, state: EngineState, pairs: Sequence[tuple[FoldResult, Decision]]
    ) -> None:
        """Persist touched incidents, merges and one decision per alert."""

    def save_intents(
        self,
        tenant_id: str,
        intents: Sequence[tuple[str, str, dict[str, Any]]],
        traces: Mapping[str, str] | None = None,
    ) -> None:
        """Notification outbox rows ``(incident_id, event, detail)``, committed with
        the decisions that caused them; ``traces``: incident id -> the traceparent of
        the decision, which the delivery span continues."""

    def save_rollups(self, tenant_id: str, pairs: Sequence[tuple[FoldResult, Decision]]) -> None:
        """Count the tenant's batch for analytics, the quota and onboarding."""

    def finish(self, outcome: BatchOutcome) -> None:
        """Dead-letter, schedule retries and acknowledge the batch's queue messages."""


class Store(Protocol):
    """Tenants, integrations, processed records and dead letters."""

    def create_tenant(self, name: str) -> Tenant: ...

    def get_tenant(self, tenant_id: str) -> Tenant | None: ...

    def create_api_key(self, tenant_id: str, name: str) -> str:
        """Return the new key; only its hash is stored."""

    def tenant_for_api_key(self, key: str) -> str | None: ...

    def accounts(self) -> AccountStore:
        """Users, memberships, sessions, invitations and API keys."""

    def create_integration(
        self, tenant_id: str, provider: str, name: str, secret: str
    ) -> Integration: ...

    def integrations_for(self, tenant_id: str, provider: str) -> list[Integration]: ...

    def secret_key_reads(self) -> bool | None:
        """Whether the key decrypts a stored integration secret; None when none is stored."""

    def alerts_this_month(self, tenant_id: str) -> int: ...

    def product(self) -> ProductStore: ...

    def tenant_config(self, tenant_id: str) -> tuple[TenantSettings, Rules]:
        """The tenant's correlation settings and human-made rules."""

    def tenant_settings(self, tenant_id: str) -> TenantSettings:
        """The tenant's settings alone (one read: no rules)."""

    def transaction(self, tenant_ids: Sequence[str]) -> AbstractContextManager[Transaction]:
        """A Transaction that commits on normal exit and rolls back on error. It holds
        an exclusive claim on ``tenant_ids`` (every tenant it will write) until then,
        so concurrent workers never correlate one tenant from a stale view."""

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

    def connections_in_use(self) -> int:
        """Database connections this process holds now (for /metrics)."""

    def ping(self) -> None: ...

    def refresh_statistics(self) -> None:
        """Refresh the query planner's statistics as the data grows (scheduled jobs)."""

    def close(self) -> None:
        """Release pooled connections (a stopped process must not hold them)."""

    def purge_expired(self, tenant_id: str, cutoff: datetime) -> dict[str, int]:
        """Delete the tenant's records older than ``cutoff``, in short batches; firing
        alerts and incidents that still have alerts stay. Counts per kind."""

    # --- incidents, rules and settings, for the REST API (tenant-scoped) ----------------

    def update_settings(self, tenant_id: str, changes: dict[str, Any]) -> TenantSettings:
        """Merge ``changes`` (a partial ``settings_dict``) into the tenant's settings."""

    def set_dependencies(self, tenant_id: str, dependencies: dict[str, list[str]]) -> None:
        """Replace the tenant's declared service dependencies."""

    def list_incidents(
        self, tenant_id: str, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> Page: ...

    def get_incident(self, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
        """The incident with its alerts, timeline and noise score."""

    def notification_detail(self, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
        """The incident as a notification shows it, at a cost bounded whatever its size:
        its worst alerts, the repeat count, the human actions."""

    def digest(self, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Counts of one day for the daily digest mail."""

    def incident_action(
        self,
        tenant_id: str,
        incident_id: str,
        action: IncidentAction,
        snooze_minutes: int = 60,
        *,
        actor: str = "api",
    ) -> dict[str, Any] | None:
        """ack | resolve | snooze | reopen by ``actor``, recorded on the timeline; None
        when unknown. Raises InvalidTransition when the incident's status does not
        allow it."""

    def add_note(
        self, tenant_id: str, incident_id: str, text: str, *, actor: str = "api"
    ) -> dict[str, Any] | None: ...

    def split_incident(
        self, tenant_id: str, incident_id: str, alert_ids: list[str], *, actor: str = "api"
    ) -> dict[str, Any] | None:
        """Move these alerts of the incident into a new one; the new incident, None
        when unknown; InvalidTransition when the alerts are not all its own or all of it."""

    def merge_incident(
        self, tenant_id: str, incident_id: str, into: str, *, actor: str = "api"
    ) -> dict[str, Any] | None:
        """Merge ``incident_id`` into ``into``; the absorbing incident, None when either
        is unknown; ``InvalidTransition`` when either was merged away or they are one."""

    def add_feedback(
        self, tenant_id: str, incident_id: str, verdict: Verdict, *, actor: str = "api"
    ) -> dict[str, Any] | None: ...

    def alert_decision(self, tenant_id: str, alert_id: str) -> dict[str, Any] | None:
        """The alert's latest correlation decision."""

    def list_suppressions(
        self, tenant_id: str, mode: SuppressionMode | None, limit: int, cursor: str | None
    ) -> Page: ...

    def replay_suppression(self, tenant_id: str, decision_id: str) -> dict[str, Any] | None:
        """Mark a suppressed decision for delivery after all; InvalidTransition when it
        was not suppressed."""

    def list_silences(self, tenant_id: str) -> list[dict[str, Any]]: ...

    def create_silence(self, tenant_id: str, silence: Silence) -> dict[str, Any]: ...

    def update_silence(self, tenant_id: str, silence: Silence) -> dict[str, Any] | None:
        """Replace one; None when the tenant has no such silence."""

    def list_inhibitions(self, tenant_id: str) -> list[dict[str, Any]]: ...

    def create_inhibition(self, tenant_id: str, rule: InhibitRule) -> dict[str, Any]: ...

    def update_inhibition(self, tenant_id: str, rule: InhibitRule) -> dict[str, Any] | None:
        """Replace the rule's matchers and ``equal`` labels; None when the tenant has no
        rule ``rule.id``."""

    def delete_rule(self, tenant_id: str, kind: RuleKind, rule_id: str) -> bool:
        """Delete a ``silence`` or ``inhibition``; False when the tenant has none such."""

    # --- suggestions and the what-if replay (tenant-scoped) ----------------------------

    def list_tenants(self) -> list[Tenant]: ...

    def suggestion_history(self, tenant_id: str, now: datetime) -> History:
        """The alerts, deploys and feedback the suggestion rules read."""

    def save_suggestions(self, tenant_id: str, found: Sequence[Suggestion], now: datetime) -> None:
        """Upsert by (kind, key): new ones open, open ones refreshed, decided ones kept;
        open ones no longer found expire."""

    def request_mute(self, tenant_id: str, incident_id: str, actor: str) -> dict[str, Any] | str:
        """A suggestion, for review, to mute the incident's noisiest alert ("Mute
        similar…"); or why none was made."""

    def list_suggestions(
        self,
        tenant_id: str,
        status: str | None,
        kind: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page: ...

    def accept_suggestion(
        self, tenant_id: str, suggestion_id: str, now: datetime
    ) -> SuggestionVerdict | None:
        """Turn an open suggestion into its rule; None when the tenant has none such."""

    def dismiss_suggestion(
        self, tenant_id: str, suggestion_id: str, now: datetime
    ) -> SuggestionVerdict | None: ...

    def replay_source(
        self,
        tenant_id: str,
        since: datetime,
        until: datetime,
        limit: int,
        deploy_lookback: timedelta,
    ) -> ReplaySource:
        """Read-only: stored alerts of a range and what actually happened to them."""


@dataclass(frozen=True, slots=True)
class SuggestionVerdict:
    """What accepting or dismissing a suggestion did. ``changed`` is False when it was
    already decided (nothing happened); ``rule`` is the rule an accept created."""

    suggestion: dict[str, Any]
    changed: bool
    rule: dict[str, Any] | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ActualDecision:
    alert_id: str
    page: bool
    suppressed_by: str | None
    would_suppress: str | None


@dataclass(slots=True)
class ReplaySource:
    """What a what-if replay reads: stored alerts in event-time order (``truncated``
    when there were more than asked for), deploys that may attach to them, every
    decision actually taken on them, and whether the incidents they are in now paged."""

    records: list[AlertRecord]
    deploys: list[DeployRef]
    decisions: list[ActualDecision]
    incident_paged: dict[str, bool]
    truncated: bool = False


class Archive(Protocol):
    """Raw payloads, kept for audit and replay."""

    def put(self, key: str, data: bytes, *, durable: bool = False) -> None: ...

    def put_segment(self, key: str, payloads: list[bytes]) -> list[str]:
        """Store payloads together; return a reference to each for ``get``."""

    def get(self, ref: str) -> bytes:
        """The payload; FileNotFoundError when it is gone (past retention)."""

    def purge_before(self, tenant_id: str, cutoff: datetime) -> int:
        """Drop the tenant's payloads of days before ``cutoff``'s day; how many
        folders or objects went."""

    def keys(self, tenant_id: str) -> list[str]:
        """Every file or object the tenant has in the archive (for one-off rewrites)."""


class RateLimiter(Protocol):
    """Per-key token buckets (per-tenant admission, design §5)."""

    def take(self, key: str, rate: float) -> float:
        """Take a token from ``key``'s bucket, which refills at ``rate`` per second and
        holds one second's worth (at least one token); 0 if admitted, else the seconds
        until a token is available."""


class CircuitOpen(Exception):
    """An outbound call refused without being attempted: its target kept failing."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; next trial in {retry_after:.1f} s")
        self.name = name
        self.retry_after = retry_after


class CircuitBreaker(Protocol):
    """One circuit per outbound target (e.g. ``slack:T123``): after ``threshold``
    consecutive failures the target is left alone for a cool-down, then a single
    trial call decides whether it is back. Use it through ``guarded``."""

    def acquire(self, name: str) -> float:
        """0 if a call may go ahead (closed, or this caller holds the half-open trial),
        else the seconds until a trial will be let through."""

    def record_success(self, name: str) -> None: ...

    def record_failure(self, name: str) -> None: ...


class Degradable(Protocol):
    """Shared state the service can run without (Redis): while it fails, adapters fall
    back to process memory and readiness reports it as degraded, not failing."""

    @property
    def healthy(self) -> bool: ...

    @property
    def last_error(self) -> str | None: ...

    def probe(self) -> None:
        """Try the backend now, unless it is backing off after a failure."""

    def close(self) -> None: ...


@contextmanager
def guarded(breaker: CircuitBreaker, name: str) -> Iterator[None]:
    """Run the block through ``name``'s circuit: raise CircuitOpen without running it
    while the circuit is open; an exception escaping the block counts as a failure."""
    wait = breaker.acquire(name)
    if wait > 0:
        raise CircuitOpen(name, wait)
    try:
        yield
    except Exception:
        breaker.record_failure(name)
        raise
    breaker.record_success(name)
