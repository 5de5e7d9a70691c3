"""Applies one worker batch in one transaction: fold alerts by fingerprint, correlate
them into incidents, store every record and decision, write the notification outbox,
acknowledge the queue messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, Fold, FoldResult, fold
from dd0c_alert.correlation.engine import correlate, event_time
from dd0c_alert.correlation.model import Decision, DeployRef, Rules, TenantSettings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.notify.changes import Snapshot, changes
from dd0c_alert.storage.ports import BatchOutcome, Store

TenantConfig = Callable[[str], tuple[TenantSettings, Rules]]


def persist(
    store: Store,
    outcome: BatchOutcome,
    config: TenantConfig | None = None,
    tick: Callable[[], None] | None = None,
    traces: Mapping[str, str] | None = None,
) -> list[tuple[FoldResult, Decision]]:
    """Store the batch; return each alert's fold and decision, in event-time order.

    Alerts are folded and correlated in event-time order (the order they happened),
    not delivery order, so a batch's shuffled deliveries give the same incidents.
    ``tick`` is called before each alert is decided; an exception from it rolls the
    whole batch back (the worker's time budget). ``traces``: event id -> the W3C
    traceparent of its processing, kept with the notification intents it causes.
    """
    config = config or store.tenant_config
    alerts = sorted(outcome.alerts, key=event_time)
    # Retries only touch the queue, which is not tenant data: no claim needed for them.
    tenant_ids = sorted(
        {a.tenant_id for a in alerts}
        | {d.tenant_id for d in outcome.deploys}
        | {dead.event.tenant_id for dead in outcome.dead}
    )
    with store.transaction(tenant_ids) as tx:
        states = tx.fingerprint_states({(a.tenant_id, a.fingerprint) for a in alerts})
        # Fingerprints with a stored occurrence, by tenant: only they have history.
        seen_before: dict[str, set[str]] = {}
        for tenant_id, fingerprint in states:
            seen_before.setdefault(tenant_id, set()).add(fingerprint)
        changed: dict[str, AlertRecord] = {}
        created: set[str] = set()
        by_tenant: dict[str, list[FoldResult]] = {}
        for alert in alerts:
            state = states.setdefault((alert.tenant_id, alert.fingerprint), FingerprintState())
            result = fold(state, alert)
            by_tenant.setdefault(alert.tenant_id, []).append(result)
            changed[result.record.id] = result.record
            if result.fold is Fold.NEW:
                created.add(result.record.id)
        deploys_by_tenant: dict[str, list[DeployRef]] = {}
        stored = tx.save_deploys(outcome.deploys)
        for ref, event in zip(stored, outcome.deploys, strict=True):
            deploys_by_tenant.setdefault(event.tenant_id, []).append(ref)
        pairs: list[tuple[FoldResult, Decision]] = []
        for tenant_id in sorted(set(by_tenant) | set(deploys_by_tenant)):
            folds = by_tenant.get(tenant_id, [])
            tenant_deploys = deploys_by_tenant.get(tenant_id, [])
            settings, rules = config(tenant_id)
            engine_state = tx.correlation_state(
                tenant_id, settings, rules, folds, tenant_deploys, seen_before.get(tenant_id, set())
            )
            before = {i: Snapshot.of(x) for i, x in engine_state.incidents.items()}
            decisions = correlate(engine_state, folds, tenant_deploys, new_id, tick)
            tenant_pairs = list(zip(folds, decisions, strict=True))
            tx.save_correlation(engine_state, tenant_pairs)
            tx.save_rollups(tenant_id, tenant_pairs)
            tx.save_intents(
                tenant_id,
                changes(before, engine_state.incidents, engine_state.touched),
                _incident_traces(tenant_pairs, traces) if traces else None,
            )
            pairs += tenant_pairs
        tx.save_alerts(
            [r for key, r in changed.items() if key in created],
            [r for key, r in changed.items() if key not in created],
        )
        tx.finish(outcome)
    return pairs


def _incident_traces(
    pairs: Sequence[tuple[FoldResult, Decision]], traces: Mapping[str, str]
) -> dict[str, str]:
    """incident id -> traceparent of the latest event (in event time) that touched it:
    the delivery of what the incident now shows continues that event's trace."""
    found: dict[str, str] = {}
    for result, decision in pairs:
        traceparent = traces.get(result.event_id)
        if traceparent is not None:
            found[decision.incident_id] = traceparent
    return found
