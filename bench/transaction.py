"""Where one worker transaction's time goes, phase by phase, on a store already warm.

``worker.py`` times a whole drain, which drifts with the machine by a fifth from one
run to the next; a change to one step of the batch transaction disappears in that.
This loads a store with a backlog of a scenario, then runs the same next transaction
(2,000 alerts, or 500 single-alert events) again and again, rolled back each time,
and prints each phase's best time per alert: the best of many runs of identical work
is what the code costs, not what the machine did meanwhile. Not a test.

    .venv/bin/python bench/transaction.py [--scenario spread] [--alerts 60000]
        [--runs 15] [--size N]

Phases are those of ``pipeline.persist``: reading the fingerprints' states, folding,
loading the engine's state, correlating, and the writes. Normalising, the queue and
the commit are outside (``worker.py`` has them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from worker import SCENARIOS, bodies, enqueue, open_bench

from dd0c_alert import logs
from dd0c_alert.correlation.dedup import FingerprintState, Fold, fold
from dd0c_alert.correlation.engine import correlate, event_time
from dd0c_alert.domain.ids import new_id
from dd0c_alert.notify.changes import Snapshot, changes
from dd0c_alert.storage.ports import BatchOutcome


class _RolledBack(Exception):
    """Ends each run's transaction without a commit."""


def run(scenario: str, alerts: int, runs: int, size: int, folder: Path) -> dict[str, object]:
    runtime, worker, tenant_id, integration_id = open_bench(folder)
    rnd = random.Random(7)
    asyncio.run(enqueue(runtime, tenant_id, integration_id, bodies(scenario, alerts, rnd)))
    while worker.run_once():
        pass
    extra = bodies(scenario, size, rnd)
    asyncio.run(enqueue(runtime, tenant_id, integration_id, extra))
    events = runtime.queue.claim(len(extra), 600)
    outcome = BatchOutcome()
    refs = worker._archive_batch(events)
    for event in events:
        worker._process(event, refs[event.event_id], outcome)
    settings, rules = worker._config(tenant_id)
    gc.collect()
    gc.freeze()
    best: dict[str, float] = {}

    def lap(name: str, started: float) -> float:
        now = time.perf_counter()
        best[name] = min(best.get(name, float("inf")), now - started)
        return now

    for _ in range(runs):
        try:
            with runtime.store.transaction([tenant_id]) as tx:
                at = time.perf_counter()
                found = sorted(outcome.alerts, key=event_time)
                states = tx.fingerprint_states({(a.tenant_id, a.fingerprint) for a in found})
                at = lap("fingerprint_states", at)
                seen = {fingerprint for _, fingerprint in states}
                folds, changed, created = [], {}, set()
                for item in found:
                    result = fold(
                        states.setdefault((item.tenant_id, item.fingerprint), FingerprintState()),
                        item,
                    )
                    folds.append(result)
                    changed[result.record.id] = result.record
                    if result.fold is Fold.NEW:
                        created.add(result.record.id)
                at = lap("fold", at)
                state = tx.correlation_state(tenant_id, settings, rules, folds, [], seen)
                at = lap("load_state", at)
                before = {i: Snapshot.of(x) for i, x in state.incidents.items()}
                pairs = list(zip(folds, correlate(state, folds, [], new_id, None), strict=True))
                at = lap("correlate", at)
                tx.save_correlation(state, pairs)
                at = lap("save_correlation", at)
                tx.save_rollups(tenant_id, pairs)
                at = lap("save_rollups", at)
                tx.save_intents(tenant_id, changes(before, state.incidents, state.touched), None)
                at = lap("save_intents", at)
                tx.save_alerts(
                    [r for key, r in changed.items() if key in created],
                    [r for key, r in changed.items() if key not in created],
                )
                at = lap("save_alerts", at)
                raise _RolledBack
        except _RolledBack:
            pass
    runtime.stop()
    count = len(outcome.alerts)
    phases = {name: round(seconds / count * 1e6, 1) for name, seconds in best.items()}
    return {
        "scenario": scenario,
        "stored_before": alerts,
        "transaction_alerts": count,
        "runs": runs,
        "us_per_alert": phases,
        "total_us_per_alert": round(sum(phases.values()), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="spread")
    parser.add_argument("--alerts", type=int, default=60_000, help="alerts stored first")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--size", type=int, help="alerts in the timed transaction")
    args = parser.parse_args()
    size = args.size or (2000 if SCENARIOS[args.scenario] > 1 else 500)
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    logs.configure("warning")
    with tempfile.TemporaryDirectory(prefix="dd0c-transaction-bench-") as folder:
        print(json.dumps(run(args.scenario, args.alerts, args.runs, size, Path(folder))))


if __name__ == "__main__":
    main()
