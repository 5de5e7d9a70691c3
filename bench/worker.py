"""Worker throughput: queue a backlog first, then time the worker draining it alone.

The end-to-end rate of ``bench/ingest.py`` mixes admission, the HTTP client and the
worker on two cores; this isolates the worker (normalise, fold, correlate, store,
outbox, queue acknowledgement), in-process, on the embedded SQLite store, so a change
to the batch transaction shows up as a change in one number. Prints one JSON line per
scenario on stdout; progress on stderr. Not a test.

    .venv/bin/python bench/worker.py [--scenario NAME|all] [--alerts 50000]

Scenarios: ``storm`` and ``single`` — ``bench/ingest.py``'s Alertmanager notifications of
100 alerts and of one, every alert new and of one service (one incident grows to all of
them), as its end-to-end figures send them; ``spread`` — 100-alert notifications over
200 services x 50 alert names (many incidents, repeats); ``spread-single`` — that mix
one alert a notification.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from ingest import MARK, body_parts, notification

from dd0c_alert import logs
from dd0c_alert.app import build_runtime
from dd0c_alert.cli_serve import freeze_heap
from dd0c_alert.config import Settings
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.ports import RawEvent

SCENARIOS = {"storm": 100, "spread": 100, "single": 1, "spread-single": 1}


PROGRESS = sys.stderr


def log(message: str) -> None:
    print(f"[bench] {message}", file=PROGRESS, flush=True)


def alert(labels: dict[str, str], fingerprint: str) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": labels,
        "annotations": {"summary": f"{labels['alertname']} on {labels['service']}"},
        "startsAt": "2026-12-05T06:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": fingerprint,
    }


def bodies(scenario: str, total: int, rnd: random.Random) -> list[bytes]:
    per = SCENARIOS[scenario]
    if not scenario.startswith("spread"):  # bench/ingest.py's payloads, as end to end
        parts = body_parts(per)
        return [
            MARK.join(parts).replace(MARK, f"{scenario}-{n}").encode() for n in range(total // per)
        ]
    found: list[bytes] = []
    for start in range(0, total, per):
        items = []
        for _ in range(start, min(total, start + per)):
            service, name = rnd.randrange(200), rnd.randrange(50)
            labels = {"alertname": f"Alert{name}", "service": f"svc-{service}"}
            labels["severity"] = ("critical", "warning", "info")[name % 3]
            items.append(alert(labels, f"s{service}-a{name}"))
        found.append(orjson.dumps(notification(items)))
    return found


async def enqueue(runtime: Runtime, tenant_id: str, integration_id: str, docs: list[bytes]) -> None:
    async def put(body: bytes) -> None:
        await runtime.queue.put(
            RawEvent(
                event_id=new_id(),
                tenant_id=tenant_id,
                integration_id=integration_id,
                provider="alertmanager",
                received_at=time.time(),
                headers={"content-type": "application/json"},
                body=body,
            )
        )

    for start in range(0, len(docs), 500):
        await asyncio.gather(*(put(b) for b in docs[start : start + 500]))


def open_bench(folder: Path) -> tuple[Runtime, Worker, str, str]:
    """A runtime with the worker and no server on a fresh store in ``folder``, its queue
    started, and one tenant with an Alertmanager integration (their ids)."""
    settings = Settings(data_dir=folder, secret_key="", suggest_interval_seconds=0)
    runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate"}))
    assert runtime.worker is not None
    tenant = runtime.store.create_tenant("bench")
    integration = runtime.store.create_integration(tenant.id, "alertmanager", "am", "s3cret")
    runtime.queue.start()
    return runtime, runtime.worker, tenant.id, integration.id


def run(scenario: str, alerts: int, folder: Path) -> dict[str, Any]:
    runtime, worker, tenant_id, integration_id = open_bench(folder)
    docs = bodies(scenario, alerts, random.Random(7))
    asyncio.run(enqueue(runtime, tenant_id, integration_id, docs))
    log(f"{scenario}: {len(docs)} events queued ({alerts} alerts); draining")
    freeze_heap()  # the collector as serve's processes set it
    started, cpu_started = time.perf_counter(), time.process_time()
    written_before = bytes_written()
    events = 0
    while handled := worker.run_once():
        events += handled
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    written_after = bytes_written()
    written = None
    if written_before is not None and written_after is not None:
        written = written_after - written_before
    runtime.stop()
    return {
        "scenario": scenario,
        "events": events,
        "alerts": alerts,
        "drain_s": round(elapsed, 2),
        "alerts_per_s": round(alerts / elapsed),
        "events_per_s": round(events / elapsed),
        "cpu_us_per_alert": round(cpu / alerts * 1e6),
        # What the drain handed the kernel to write (WAL, checkpoints, archive): it
        # drifts with the machine far less than the times do.
        "written_kb_per_alert": None if written is None else round(written / alerts / 1024, 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def bytes_written() -> int | None:
    """This process's bytes written so far (Linux's ``/proc/self/io``), else None."""
    try:
        with open("/proc/self/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
    except OSError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--alerts", type=int, default=50_000)
    args = parser.parse_args()
    # Logged as `serve` logs (a line per event is part of the cost), into /dev/null.
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    logs.configure("info")
    for scenario in SCENARIOS if args.scenario == "all" else [args.scenario]:
        alerts = args.alerts if SCENARIOS[scenario] > 1 else args.alerts // 5
        with tempfile.TemporaryDirectory(prefix="dd0c-worker-bench-") as folder:
            print(json.dumps(run(scenario, alerts, Path(folder))), flush=True)


if __name__ == "__main__":
    main()
