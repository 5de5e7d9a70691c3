"""Applies one worker batch: fold its alerts by fingerprint, store what changed and
acknowledge its queue messages, in one transaction."""

from __future__ import annotations

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, Fold, FoldResult, fold
from dd0c_alert.storage.ports import BatchOutcome, Store


def persist(store: Store, outcome: BatchOutcome) -> list[FoldResult]:
    """Store the batch; return each alert's fold, in batch order."""
    with store.transaction() as tx:
        states = tx.fingerprint_states({(a.tenant_id, a.fingerprint) for a in outcome.alerts})
        changed: dict[str, AlertRecord] = {}
        created: set[str] = set()
        results: list[FoldResult] = []
        for alert in outcome.alerts:
            state = states.setdefault((alert.tenant_id, alert.fingerprint), FingerprintState())
            result = fold(state, alert)
            results.append(result)
            changed[result.record.id] = result.record
            if result.fold is Fold.NEW:
                created.add(result.record.id)
        tx.save_alerts(
            [r for key, r in changed.items() if key in created],
            [r for key, r in changed.items() if key not in created],
        )
        tx.save_deploys(outcome.deploys)
        tx.finish(outcome)
    return results
