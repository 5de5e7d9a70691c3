"""The queue consumer: raw events in, canonical records stored, messages acknowledged.

A batch is stored and acknowledged in one transaction, so a crash at any point
leaves each event either fully processed and gone from the queue, or untouched and
delivered again: processing is exactly-once per event id.

Failures are sorted by kind. A body the provider module does not understand
(PayloadError) cannot succeed on retry and is dead-lettered at once; anything else
(a bug, a database error) is retried with exponential backoff and dead-lettered after
the last attempt. Either way the raw event is kept and can be replayed. A list payload of
which only some items are unreadable (PartialPayload) has the others processed and is
dead-lettered in the same transaction, marked so that its replay reads only the skipped
items. An archive that
refuses writes (disk full, object store down) is no fault of the events: they wait for
it uncounted, however long it takes, and none is dead-lettered for it.

No event may hold the others back (a poison event: one whose rules or size make it
too costly to decide, or that crashes the process). Three guards:

- a time budget per batch transaction: one that runs over it is rolled back and its
  events are stored one by one, each under a budget of its own; an event over that budget
  is set aside to the dead-letter store as ``processing_timeout``;
- an event claimed before and never finished (the process died or hung on it) is
  decided alone, and after ``max_attempts`` claims it is dead-lettered as
  ``processing_abandoned`` without running again: a restart never re-runs it for ever;
- batches shrink while they take longer than a target and grow back when cheap, and
  the queue hands out work round-robin across tenants, so one tenant's storm or
  costly rules delay another tenant's decisions by about one batch.
"""

from __future__ import annotations

import random
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import structlog

from dd0c_alert import tracing
from dd0c_alert.correlation.dedup import FoldResult
from dd0c_alert.correlation.model import Decision, Rules, TenantSettings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import CanonicalAlert, Normalised
from dd0c_alert.domain.times import believable
from dd0c_alert.logs import Throttle
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.base import UNREAD_ITEMS_HEADER, Delivery, PartialPayload, PayloadError
from dd0c_alert.providers.parse import json_document
from dd0c_alert.storage.archive import archive_key
from dd0c_alert.storage.memory_state import MemoryCircuitBreaker
from dd0c_alert.storage.ports import (
    Archive,
    BatchOutcome,
    CircuitBreaker,
    CircuitOpen,
    ClaimBudget,
    DeadLetter,
    IngestQueue,
    LeaseLost,
    RawEvent,
    Retry,
    Store,
    guarded,
)

from . import metrics
from .background import Background
from .event_traces import BatchTrace
from .persist import persist

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 300.0
#: A failure that lasts (the disk full, the database away) is logged once a minute,
#: with how often it happened meanwhile, not at every poll.
_FAILURE_LINES = Throttle(60.0)
#: How long events wait after the archive refused a write, before its circuit opens
#: (then they wait for the circuit's next trial).
ARCHIVE_RETRY_SECONDS = 1.0
#: Stored on dead letters set aside by the time budget or after repeated crashes.
PROCESSING_TIMEOUT = "processing_timeout"
PROCESSING_ABANDONED = "processing_abandoned"
#: Bounds how long one transaction holds SQLite's write lock, which webhook
#: admission waits for: a batch of large alert groups is stored in several.
MAX_RECORDS_PER_TRANSACTION = 2000
CONFIG_TTL_SECONDS = 2.0


class BudgetExceeded(Exception):
    """A batch or an event took longer than its time budget."""


class Budget:
    """A deadline, checked between alerts (``check`` is the engine's ``tick``)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self._deadline:
            raise BudgetExceeded(f"over the {self.seconds:g} s budget")


class Worker(Background):
    THREAD_NAME = "worker"

    def __init__(
        self,
        store: Store,
        queue: IngestQueue,
        archive: Archive,
        *,
        batch_size: int = 2000,
        claim_budget: ClaimBudget | None = None,
        max_attempts: int = 5,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.5,
        breakers: CircuitBreaker | None = None,
        batch_budget_seconds: float = 10.0,
        event_budget_seconds: float = 5.0,
        batch_target_seconds: float = 0.5,
    ) -> None:
        super().__init__()
        self._store = store
        #: An archive that keeps failing is not called on every batch: the batches
        #: wait (retried with backoff) until a trial write gets through.
        self._breakers = breakers or MemoryCircuitBreaker()
        self._queue = queue
        self._archive = archive
        self._batch_size = batch_size
        #: Bounds the bodies a batch holds in memory (``fair_claim``).
        self._claim_budget = claim_budget
        #: The claim size now: halved while batches run over the target, doubled back
        #: (up to ``batch_size``) while they take under a quarter of it. It starts at
        #: one, so a first batch of costly events cannot be a long one.
        self.batch_limit = 1
        self._batch_budget = batch_budget_seconds
        self._event_budget = event_budget_seconds
        self._batch_target = batch_target_seconds
        self._max_attempts = max_attempts
        self._lease = lease_seconds
        self._poll = poll_seconds
        self.processed = 0
        #: Events of the batch under way handed back unstarted (``_hand_back``).
        self._handed_back = 0
        self.last_error: str | None = None
        #: Called after each batch: the notifier in the same process wakes up at once.
        self.after_commit: Callable[[], None] | None = None
        self._configs: dict[str, tuple[float, tuple[TenantSettings, Rules]]] = {}
        #: The batch under way: its spans (tracing on) and each event's traceparent,
        #: which the outbox keeps so the delivery continues the event's trace.
        self._trace: BatchTrace | None = None
        self._traceparents: dict[str, str] = {}
        #: The claim-checked bodies of the batch under way, read before it began.
        self._claim_checked: dict[str, bytes] = {}

    def _config(self, tenant_id: str) -> tuple[TenantSettings, Rules]:
        """Tenant settings and rules, re-read at most every few seconds."""
        now = time.monotonic()
        cached = self._configs.get(tenant_id)
        if cached is None or cached[0] < now:
            cached = self._configs[tenant_id] = (
                now + CONFIG_TTL_SECONDS,
                self._store.tenant_config(tenant_id),
            )
        return cached[1]

    def run(self) -> None:
        while not self.stopping:
            # Wait only when the queue gave nothing: compared with the largest batch
            # instead, every batch the adaptive limit had made smaller was followed by
            # a poll interval's sleep, and a backlog drained at a quarter of the
            # worker's speed. Nor with the limit: a claim cut short by its byte budget
            # leaves the rest of a backlog waiting.
            try:
                handled = self.run_once()
            except Exception as exc:  # the database itself failed: wait and try again
                self.last_error = repr(exc)
                held = _FAILURE_LINES.allow(type(exc).__name__)
                if held is not None:
                    log.exception("worker_batch_failed", repeated=held)
                handled = 0
            if not handled:
                self.pause(self._poll)

    def run_once(self) -> int:
        """Process one batch; return how many events it held."""
        events = self._queue.claim(self.batch_limit, self._lease, self._claim_budget)
        if not events:
            return 0
        if not tracing.enabled():
            # A sender's own traceparent, when it sent a valid one: its trace id is
            # logged, and the deliveries it causes keep it.
            self._traceparents = {
                e.event_id: parent
                for e in events
                if (parent := tracing.sender_traceparent(e.headers.get(tracing.TRACEPARENT)))
            }
            try:
                return self._run_batch(events)
            finally:
                self._traceparents = {}
        self._trace = BatchTrace(events)
        self._traceparents = self._trace.traceparents()
        try:
            with self._trace.batch_current():
                return self._run_batch(events)
        finally:
            self._trace.end()
            self._trace, self._traceparents = None, {}

    @contextmanager
    def _current(self, event: RawEvent) -> Iterator[None]:
        if self._trace is None:
            yield
        else:
            with self._trace.current(event.event_id):
                yield

    def _run_batch(self, events: list[RawEvent]) -> int:
        started = time.monotonic()
        metrics.BATCH_EVENTS.observe(len(events))
        abandoned = [e for e in events if e.attempts > self._max_attempts]
        if abandoned:
            dead = [DeadLetter(event=e, error=_abandoned(e)) for e in abandoned]
            if self._trace is not None:
                for event in abandoned:
                    self._trace.failed(event.event_id, PROCESSING_ABANDONED)
            metrics.DEAD_LETTERS.labels(PROCESSING_ABANDONED).inc(len(dead))
            log.warning("events_abandoned", event_ids=[e.event_id for e in abandoned])
            persist(self._store, BatchOutcome(dead=dead), self._config)
        live = [e for e in events if e.attempts <= self._max_attempts]
        try:
            refs = self._archive_batch(live)
        except Exception as exc:  # the archive is unwritable: every event waits for it
            self._postpone(live, exc)
            return len(events)
        live, unreadable, refusal = self._read_claim_checks(live)
        if refusal is not None:
            self._postpone(unreadable, refusal, rest=not live)
        first = [e for e in live if e.attempts <= 1]
        # Claimed before and not finished: decided alone, so if one of them is what
        # stopped the last attempt, it cannot take the others down with it again.
        again = [e for e in live if e.attempts > 1]
        self._handed_back = 0
        stored = self._apply_batch(first, refs, started)
        self._apply_one_by_one(first[stored:] + again, refs)
        self.processed += len(events) - self._handed_back
        self._adapt(time.monotonic() - started)
        if self.after_commit is not None:
            self.after_commit()
        return len(events)

    def _read_claim_checks(
        self, events: list[RawEvent]
    ) -> tuple[list[RawEvent], list[RawEvent], Exception | None]:
        """Read the bodies admission claim-checked into the archive, and split the
        events into those that can go on and those whose body cannot be read now.
        An unreadable archive (``OSError``: the object store down, the disk failing)
        is an outage like an unwritable one: counted as tries, it dead-lettered every
        large webhook accepted during an outage longer than the retries. A body that
        is gone (past retention, a restore without the archive) still fails its
        event, in ``normalise``. Returns the events that go on, those that wait and
        why they wait."""
        self._claim_checked.clear()
        ready: list[RawEvent] = []
        unreadable: list[RawEvent] = []
        refusal: Exception | None = None
        for event in events:
            if event.body is not None or not event.body_ref:
                ready.append(event)
            elif unreadable:  # one refusal is enough: the rest wait with it
                unreadable.append(event)
            else:
                try:
                    with guarded(self._breakers, "archive"):
                        body = _read_if_present(self._archive, event.body_ref)
                except (OSError, CircuitOpen) as exc:
                    refusal = exc
                    unreadable.append(event)
                    continue
                if body is not None:
                    self._claim_checked[event.event_id] = body
                ready.append(event)
        return ready, unreadable, refusal

    def _postpone(self, events: list[RawEvent], exc: Exception, *, rest: bool = True) -> None:
        """The archive refused the batch (disk full, object store down): no event can be
        processed until it is back, whatever the event holds. The events go back to the
        queue without this claim counting as one of their attempts, and the worker rests
        until the archive's circuit allows a trial. Counted, an outage longer than the
        retries (about 30 s) dead-lettered every event accepted meanwhile."""
        wait = exc.retry_after if isinstance(exc, CircuitOpen) else ARCHIVE_RETRY_SECONDS
        delay = min(max(wait, 0.01), MAX_BACKOFF_SECONDS)
        error = f"archive unavailable: {type(exc).__name__}: {exc}"
        self.last_error = error
        log.warning(
            "archive_unavailable", events=len(events), retry_in_s=round(delay, 2), error=error[:300]
        )
        retries = [Retry(e.event_id, error, delay, counted=False) for e in events]
        persist(self._store, BatchOutcome(retries=retries), self._config)
        if rest:
            self.rest(delay)

    def _hand_back(self, events: list[RawEvent]) -> None:
        """Give the queue back claimed events not started yet, visible at once and not
        counted as an attempt. The claim limit shrinks only after a batch, so a claim
        sized by cheap events and filled by large ones (thousands of alerts each) held
        every other tenant's events back for all of it: minutes at 500 such events.
        Handed back, they meet the other tenants' events in the next claim's turns."""
        log.info("batch_handed_back", events=len(events), target_s=self._batch_target)
        self._handed_back = len(events)
        note = "handed back unstarted: its batch ran past the time target"
        retries = [Retry(e.event_id, note, 0.0, counted=False) for e in events]
        persist(self._store, BatchOutcome(retries=retries), self._config)

    def _adapt(self, elapsed: float) -> None:
        if elapsed > self._batch_target and self.batch_limit > 1:
            self.batch_limit = max(1, self.batch_limit // 2)
        elif elapsed < self._batch_target / 4 and self.batch_limit < self._batch_size:
            self.batch_limit = min(self._batch_size, self.batch_limit * 2)

    def _apply_batch(self, events: list[RawEvent], refs: dict[str, str], started: float) -> int:
        """Store events in transactions of at most ``MAX_RECORDS_PER_TRANSACTION``
        records, each under the batch time budget; return how many were stored before
        a transaction ran over it (all of them, normally). The rest are the caller's
        to store one by one. Once the batch is past its time target, the events not
        started yet are handed back after a transaction (``_hand_back``)."""
        outcome, chunk, stored = BatchOutcome(), [], 0
        budget = Budget(self._batch_budget)
        for index, event in enumerate(events):
            self._process(event, refs[event.event_id], outcome)
            chunk.append(event)
            if len(outcome.alerts) + len(outcome.deploys) >= MAX_RECORDS_PER_TRANSACTION:
                if not self._persist(outcome, chunk, refs, budget):
                    return stored
                stored += len(chunk)
                outcome, chunk = BatchOutcome(), []
                budget = Budget(self._batch_budget)
                rest = events[index + 1 :]
                if rest and time.monotonic() - started > self._batch_target:
                    self._hand_back(rest)
                    return len(events)
        if chunk and not self._persist(outcome, chunk, refs, budget):
            return stored
        return len(events)

    def _persist(
        self,
        outcome: BatchOutcome,
        events: list[RawEvent],
        refs: dict[str, str],
        budget: Budget | None = None,
    ) -> bool:
        """Store one transaction's worth; ``False`` when the budget ran out first (the
        transaction rolled back, nothing of it is stored)."""
        try:
            tick = budget.check if budget else None
            pairs = persist(self._store, outcome, self._config, tick, self._traceparents)
            self._observe(outcome, events, pairs)
        except BudgetExceeded:
            log.warning("batch_over_budget", events=len(events), budget_s=self._batch_budget)
            return False
        except LeaseLost as exc:  # another consumer holds these now; its work commits
            log.warning("lease_lost", events=len(events), detail=str(exc))
        except Exception as exc:
            # One bad record must not hold the others back: store them one by one.
            held = _FAILURE_LINES.allow(f"batch_apply_failed:{type(exc).__name__}")
            if held is not None:
                log.exception("batch_apply_failed", events=len(events), repeated=held)
            self._apply_one_by_one(events, refs)
        return True

    def _archive_batch(self, events: list[RawEvent]) -> dict[str, str]:
        """Archive inline bodies, one segment per tenant; claim-checked bodies are
        archived already."""
        refs = {e.event_id: e.body_ref for e in events if e.body is None and e.body_ref}
        by_tenant: dict[str, list[RawEvent]] = {}
        for event in events:
            if event.body is not None:
                by_tenant.setdefault(event.tenant_id, []).append(event)
        for tenant_id, group in by_tenant.items():
            key = archive_key(tenant_id, f"{new_id()}.seg", group[0].received_at)
            payloads = [event.body for event in group if event.body is not None]
            with guarded(self._breakers, "archive"):
                stored = self._archive.put_segment(key, payloads)
            refs.update(zip((e.event_id for e in group), stored, strict=True))
        return refs

    def _apply_one_by_one(self, events: list[RawEvent], refs: dict[str, str]) -> None:
        for event in events:
            budget = Budget(self._event_budget)
            outcome = BatchOutcome()
            self._process(event, refs[event.event_id], outcome)
            try:
                pairs = persist(
                    self._store, outcome, self._config, budget.check, self._traceparents
                )
                self._observe(outcome, [event], pairs)
            except BudgetExceeded:
                log.warning(
                    "event_over_budget",
                    tenant_id=event.tenant_id,
                    event_id=event.event_id,
                    trace_id=tracing.trace_id_of(self._traceparents.get(event.event_id)),
                    provider=event.provider,
                )
                if self._trace is not None:
                    self._trace.failed(event.event_id, PROCESSING_TIMEOUT)
                metrics.DEAD_LETTERS.labels(PROCESSING_TIMEOUT).inc()
                error = (
                    f"{PROCESSING_TIMEOUT}: deciding this event took longer than its "
                    f"{self._event_budget:g} s budget; it was set aside so that the others "
                    "could go on (replay it once the rules that made it costly are fixed)"
                )
                dead = BatchOutcome(dead=[DeadLetter(event=event, error=error)])
                persist(self._store, dead, self._config)
            except LeaseLost as exc:
                log.warning("lease_lost", events=1, detail=str(exc))
            except Exception as exc:
                persist(self._store, self._failed(event, exc, permanent=False), self._config)

    def _process(self, event: RawEvent, raw_ref: str, outcome: BatchOutcome) -> None:
        with self._current(event):
            self._normalise_into(event, raw_ref, outcome)

    def _normalise_into(self, event: RawEvent, raw_ref: str, outcome: BatchOutcome) -> None:
        try:
            records = self.normalise(event, raw_ref)
        except PartialPayload as exc:
            # The readable items are processed; the event is kept as a dead letter that
            # names the others and whose replay reads only them. It is not acknowledged:
            # its dead letter takes it off the queue, in the same transaction.
            _add_records(outcome, exc.records)
            unread = replace(event, headers={**event.headers, UNREAD_ITEMS_HEADER: exc.unread})
            _merge(outcome, self._failed(unread, exc, permanent=True))
            return
        except PayloadError as exc:
            _merge(outcome, self._failed(event, exc, permanent=True))
            return
        except Exception as exc:
            _merge(outcome, self._failed(event, exc, permanent=False))
            return
        _add_records(outcome, records)
        outcome.acked.append(event.event_id)

    def normalise(self, event: RawEvent, raw_ref: str) -> list[Normalised]:
        """Turn an archived raw event into canonical records with ids."""
        body = event.body
        if body is None:
            body = self._claim_checked.pop(event.event_id, None)
        if body is None:
            body = self._archive.get(raw_ref)
        try:
            payload = json_document(body)
        except orjson.JSONDecodeError as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from None
        provider = PROVIDERS.get(event.provider)
        if provider is None:
            raise PayloadError(f"no provider named {event.provider!r}")
        delivery = Delivery(
            tenant_id=event.tenant_id,
            provider=event.provider,
            event_id=event.event_id,
            received_at=datetime.fromtimestamp(event.received_at, UTC),
            headers=event.headers,
        )
        try:
            records = provider.normalise(payload, delivery)
        except PartialPayload as exc:
            _stamp(exc.records, event, raw_ref, delivery.received_at)
            raise
        return _stamp(records, event, raw_ref, delivery.received_at)

    def _failed(self, event: RawEvent, exc: Exception, *, permanent: bool) -> BatchOutcome:
        error = f"{type(exc).__name__}: {exc}" if permanent else _describe(exc)
        if self._trace is not None:
            self._trace.failed(event.event_id, error.splitlines()[0][:300])
        log.warning(
            "event_failed",
            tenant_id=event.tenant_id,
            event_id=event.event_id,
            trace_id=tracing.trace_id_of(self._traceparents.get(event.event_id)),
            provider=event.provider,
            attempts=event.attempts,
            permanent=permanent,
            error=error.splitlines()[0][:300],
        )
        if permanent or event.attempts >= self._max_attempts:
            metrics.DEAD_LETTERS.labels("unreadable" if permanent else "failed").inc()
            return BatchOutcome(dead=[DeadLetter(event=event, error=error)])
        delay = min(MAX_BACKOFF_SECONDS, 2.0**event.attempts) * random.uniform(0.8, 1.2)
        return BatchOutcome(retries=[Retry(event.event_id, error, delay)])

    def _observe(
        self,
        outcome: BatchOutcome,
        events: list[RawEvent],
        pairs: list[tuple[FoldResult, Decision]],
    ) -> None:
        """Count what a committed transaction decided and how long its events waited;
        one log line per event: its tenant, incidents and trace."""
        now = time.time()
        decided: dict[str, tuple[list[str], set[str], set[str]]] = {}
        # Counted per outcome, then added once each: a labelled counter's lookup and
        # lock per alert cost 5 % of a batch.
        by_outcome: Counter[str] = Counter()
        pages = 0
        for fold_result, decision in pairs:
            by_outcome[decision.outcome.value] += 1
            pages += decision.page
            alerts, incidents, outcomes = decided.setdefault(
                fold_result.event_id, ([], set(), set())
            )
            alerts.append(decision.alert_id)
            incidents.add(decision.incident_id)
            outcomes.add(decision.outcome.value)
        for outcome_name, count in by_outcome.items():
            metrics.DECISIONS.labels(outcome_name).inc(count)
        if pages:
            metrics.PAGES.inc(pages)
        deploys: dict[str, int] = {}
        for deploy in outcome.deploys:
            deploys[deploy.event_id] = deploys.get(deploy.event_id, 0) + 1
        acked = set(outcome.acked)
        for event in events:
            if event.event_id not in acked:
                continue
            metrics.PROCESSING.observe(max(0.0, now - event.received_at))
            alerts, incidents, outcomes = decided.get(event.event_id, ([], set(), set()))
            if self._trace is not None:
                self._trace.decided(event.event_id, sorted(incidents), sorted(outcomes))
            log.info(
                "event_processed",
                tenant_id=event.tenant_id,
                event_id=event.event_id,
                provider=event.provider,
                alerts=len(alerts),
                deploys=deploys.get(event.event_id, 0),
                incident_ids=sorted(incidents),
                outcomes=sorted(outcomes),
                trace_id=tracing.trace_id_of(self._traceparents.get(event.event_id)),
            )


def _abandoned(event: RawEvent) -> str:
    return (
        f"{PROCESSING_ABANDONED}: claimed {event.attempts} times and never finished (the "
        "process stopped or hung while deciding it); set aside without running it again"
    )


def _describe(exc: Exception) -> str:
    """The error on its first line (what `dlq list`, the dashboard and the log line
    show), then the end of its traceback for whoever has to fix it."""
    summary = f"{type(exc).__name__}: {exc}"[:500]
    trace = "".join(traceback.format_exception(exc, limit=5))[-3500:]
    return f"{summary}\n\n{trace}"


def _stamp(
    records: list[Normalised], event: RawEvent, raw_ref: str, received_at: datetime
) -> list[Normalised]:
    """Give records their ids and tie them to the event and its raw payload."""
    for record in records:
        _believable_times(record, received_at)
        record.id = new_id()
        record.event_id = event.event_id
        record.raw_ref = raw_ref
    return records


def _add_records(outcome: BatchOutcome, records: list[Normalised]) -> None:
    for record in records:
        if isinstance(record, CanonicalAlert):
            outcome.alerts.append(record)
        else:
            outcome.deploys.append(record)


def _merge(into: BatchOutcome, other: BatchOutcome) -> None:
    into.retries.extend(other.retries)
    into.dead.extend(other.dead)


def _believable_times(record: Normalised, received_at: datetime) -> None:
    """Event times from the future, beyond clock skew, become the time of receipt
    (the raw payload keeps what was sent)."""
    record.started_at = believable(record.started_at, received_at)
    if isinstance(record, CanonicalAlert):
        if record.ended_at is not None:
            record.ended_at = believable(record.ended_at, received_at)
            record.started_at = min(record.started_at, record.ended_at)
    elif record.finished_at is not None:
        record.finished_at = believable(record.finished_at, received_at)


def _read_if_present(archive: Archive, ref: str) -> bytes | None:
    """The archived body, or None when it is gone (its event then fails as before)."""
    try:
        return archive.get(ref)
    except FileNotFoundError:
        return None
