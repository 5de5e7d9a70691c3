"""Correlation benchmark: the engine's throughput and the scenario suite's quality.

Prints one JSON line per figure on stdout; progress goes to stderr. Not a test.

    .venv/bin/python bench/correlation.py                 # all three parts
    .venv/bin/python bench/correlation.py --part engine --alerts 50000 --profile
    .venv/bin/python bench/correlation.py --part worker --worker-alerts 5000
    .venv/bin/python bench/correlation.py --part scenarios

Parts:

- ``engine``: alerts/s through ``dedup.fold`` + ``engine.correlate`` on one core, for a
  synthetic stream (tenants with a layered service topology, cascading problems, repeats,
  resolves, flapping alerts, late deliveries, deploys), in worker-sized batches, with
  between batches the state the worker would load from the database
  (tests/scenarios/scenario_suite.py ``MemoryRun``).
- ``worker``: events/s and alerts/s of ``Worker.run_once`` against SQLite, after
  enqueueing the same kind of stream as Alertmanager webhooks through
  ``IngestService.receive``: single-alert events and 100-alert groups.
- ``scenarios``: per scenario of tests/scenarios/data and in total: alerts, incidents,
  pages, noise reduction (1 - pages / alerts) and pairwise grouping precision / recall
  against the expected incidents, through the pure engine.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import itertools
import json
import pstats
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import psycopg

from dd0c_alert.app import build_runtime, migrate
from dd0c_alert.config import Settings
from dd0c_alert.correlation.model import DeployRef
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.engine import sqlite_path

ROOT = Path(__file__).resolve().parent.parent
REPEAT_SECONDS = 300  # a firing alert is notified again every 5 min
ENGINE_TARGET = 20_000  # alerts/s through the pure engine, one core
NOISE_TARGET = 0.90  # noise reduction on storm scenarios
PRECISION_TARGET = 0.95


def _suite() -> ModuleType:
    """tests/scenarios/scenario_suite.py: the scenario files' reader and the in-memory run."""
    path = ROOT / "tests" / "scenarios" / "scenario_suite.py"
    spec = importlib.util.spec_from_file_location("scenario_suite", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scenario_suite"] = module
    spec.loader.exec_module(module)
    return module


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- a synthetic stream --------------------------------------------------------------

T0 = datetime(2026, 11, 27, tzinfo=UTC)
LAYERS = (("edge", 0.1), ("app", 0.3), ("backend", 0.4), ("data", 0.2))


def topology(services: int, rnd: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    """Layered services, each depending on one to three of the next layer."""
    layers: list[list[str]] = []
    count = 0
    for n, (name, share) in enumerate(LAYERS):
        size = services - count if n == len(LAYERS) - 1 else max(1, round(services * share))
        layers.append([f"{name}-{i:02d}" for i in range(size)])
        count += size
    deps = {
        service: rnd.sample(below, min(len(below), rnd.randint(1, 3)))
        for above, below in itertools.pairwise(layers)
        for service in above
    }
    return [s for layer in layers for s in layer], deps


def dependents(deps: dict[str, list[str]], service: str) -> list[str]:
    """Services that depend on ``service``, transitively, nearest first."""
    order, frontier = [], [service]
    while frontier:
        nxt = [s for s, d in deps.items() for f in frontier if f in d and s not in order]
        nxt = list(dict.fromkeys(nxt))
        order += nxt
        frontier = nxt
    return order


@dataclass
class Stream:
    tenants: dict[str, tuple[dict[str, Any], dict[str, list[str]]]]
    #: (delivered at, tenant, alert or deploy), in delivery order.
    items: list[tuple[datetime, str, CanonicalAlert | DeployRef]]
    problems: int
    hours: float

    @property
    def alerts(self) -> int:
        return sum(isinstance(item, CanonicalAlert) for _, _, item in self.items)


def synthetic_stream(alerts: int, services: int, tenants: int, seed: int, hours: float) -> Stream:
    """Problems arrive at random over ``hours``: a cascade from a failing service up its
    dependents (70 %), a single noisy alert (20 %) or a flapping one (10 %). Alerts
    repeat every 5 min while firing (for at most 30 min) and most resolve; 3 % are
    delivered 5-20 min late; a third of cascades follow a deploy of their root."""
    rnd = random.Random(seed)
    names = [f"tenant-{n}" for n in range(tenants)]
    shapes = {name: topology(services, rnd) for name in names}
    items: list[tuple[datetime, str, CanonicalAlert | DeployRef]] = []
    seq = 0
    problems = 0
    span = hours * 3600

    def add(
        tenant: str, service: str, title: str, fp: str, start: float, end: float | None
    ) -> None:
        nonlocal seq
        severity = rnd.choice((Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW))
        last = end or start + 1800
        for k, moment in enumerate(range(int(start), int(last), REPEAT_SECONDS)):
            seq += 1
            items.append(
                _notification(rnd, tenant, seq, fp, service, title, severity, moment, start, k)
            )
        if end is not None:
            seq += 1
            items.append(
                _notification(rnd, tenant, seq, fp, service, title, severity, end, start, -1)
            )

    while seq < alerts:
        problems += 1
        tenant = rnd.choice(names)
        pool, deps = shapes[tenant]
        start = rnd.uniform(0, span)
        kind = rnd.random()
        if kind < 0.7:
            root = rnd.choice(pool[len(pool) // 3 :])
            affected = [root, *dependents(deps, root)[: rnd.randint(1, 6)]]
            if rnd.random() < 1 / 3:
                at = T0 + timedelta(seconds=start - rnd.uniform(120, 600))
                items.append(
                    (
                        at + timedelta(seconds=rnd.uniform(1, 10)),
                        tenant,
                        DeployRef(
                            id=f"D{problems}", service=root, started_at=at, version=f"v{problems}"
                        ),
                    )
                )
            for depth, service in enumerate(affected):
                for instance in range(rnd.randint(1, 4)):
                    begin = start + depth * rnd.uniform(10, 60) + rnd.uniform(0, 30)
                    duration = rnd.uniform(120, 1800)
                    end = begin + duration if rnd.random() < 0.8 else None
                    fp = f"{tenant}/{service}/p{problems}/i{instance}"
                    add(tenant, service, f"{service} errors", fp, begin, end)
        elif kind < 0.9:
            service = rnd.choice(pool)
            fp = f"{tenant}/{service}/noise{rnd.randint(0, 40)}"
            add(tenant, service, f"{service} disk", fp, start, start + rnd.uniform(30, 300))
        else:
            service = rnd.choice(pool)
            fp = f"{tenant}/{service}/flap{rnd.randint(0, 10)}"
            for cycle in range(rnd.randint(4, 12)):
                begin = start + cycle * 300
                add(tenant, service, f"{service} cpu", fp, begin, begin + 120)
    items.sort(key=lambda item: item[0])
    kept, count = [], 0
    for item in items:  # the first ``alerts`` alerts delivered, and the deploys among them
        count += isinstance(item[2], CanonicalAlert)
        if count > alerts:
            break
        kept.append(item)
    return Stream(
        tenants={name: ({}, shape[1]) for name, shape in shapes.items()},
        items=kept,
        problems=problems,
        hours=hours,
    )


def _notification(
    rnd: random.Random,
    tenant: str,
    seq: int,
    fp: str,
    service: str,
    title: str,
    severity: Severity,
    moment: float,
    start: float,
    repeat: int,
) -> tuple[datetime, str, CanonicalAlert]:
    resolved = repeat < 0
    at = T0 + timedelta(seconds=moment)
    delay = rnd.uniform(300, 1200) if rnd.random() < 0.03 else rnd.uniform(0.5, 15)
    received = at + timedelta(seconds=delay)
    alert = CanonicalAlert(
        id=f"A{seq:09d}",
        tenant_id=tenant,
        source="alertmanager",
        source_ref=fp,
        fingerprint=fp,
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        severity=severity,
        title=title,
        service=service,
        labels={"alertname": title, "instance": fp.rsplit("/", 1)[-1]},
        started_at=T0 + timedelta(seconds=start),
        ended_at=at if resolved else None,
        received_at=received,
    )
    return received, tenant, alert


# --- (a) the pure engine -----------------------------------------------------------------


def bench_engine(args: argparse.Namespace, suite: ModuleType) -> None:
    progress(f"engine: generating {args.alerts} alerts ...")
    stream = synthetic_stream(args.alerts, args.services, args.tenants, args.seed, args.hours)
    run = suite.MemoryRun(stream.tenants, T0)
    profiler = cProfile.Profile() if args.profile else None
    progress(f"engine: {stream.alerts} alerts in batches of {args.batch} ...")
    wall = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    for start in range(0, len(stream.items), args.batch):
        batch = stream.items[start : start + args.batch]
        for tenant in sorted({t for _, t, _ in batch}):
            alerts = [i for _, t, i in batch if t == tenant and isinstance(i, CanonicalAlert)]
            deploys = [i for _, t, i in batch if t == tenant and isinstance(i, DeployRef)]
            run.batch(tenant, alerts, deploys)
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - wall
    engine_s = run.timings["fold"] + run.timings["correlate"]
    incidents = sum(
        1 for t in run.tenants.values() for i in t.incidents.values() if i.merged_into is None
    )
    pages = sum(run.pages.values())
    rate = stream.alerts / engine_s
    emit(
        {
            "bench": "engine",
            "alerts": stream.alerts,
            "deploys": len(stream.items) - stream.alerts,
            "tenants": args.tenants,
            "services_per_tenant": args.services,
            "stream_hours": stream.hours,
            "problems": stream.problems,
            "batch_size": args.batch,
            "alert_records": len(run.names),
            "incidents": incidents,
            "pages": pages,
            "noise_reduction": round(1 - pages / stream.alerts, 4),
            "engine_s": round(engine_s, 3),
            "fold_s": round(run.timings["fold"], 3),
            "correlate_s": round(run.timings["correlate"], 3),
            "state_load_s": round(run.timings["load"], 3),
            "state_save_s": round(run.timings["save"], 3),
            "wall_s": round(wall, 3),
            "alerts_per_s": round(rate),
            "target_alerts_per_s": ENGINE_TARGET,
            "meets_target": rate >= ENGINE_TARGET,
            "profiled": bool(profiler),
        }
    )
    if profiler is not None:
        stats = pstats.Stats(profiler)
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
        emit(
            {
                "bench": "engine_profile",
                "note": "top functions by own time (tottime); profiling slows everything",
                "top": [
                    {
                        "function": f"{Path(file).name}:{line}:{name}",
                        "calls": calls,
                        "tottime_s": round(tottime, 3),
                        "cumtime_s": round(cumtime, 3),
                    }
                    for (file, line, name), (_, calls, tottime, cumtime, _) in rows[: args.top]
                ],
            }
        )


# --- (b) the worker against SQLite -------------------------------------------------------


def bench_worker(args: argparse.Namespace, per_event: int, alerts: int) -> None:
    """The first ``alerts`` notifications of the synthetic stream (at the engine part's
    density), as Alertmanager webhooks of ``per_event`` alerts of one tenant each, with
    event times moved so the stream ends now."""
    hours = args.hours * alerts / args.alerts
    stream = synthetic_stream(alerts, args.services, args.tenants, args.seed, hours)
    with tempfile.TemporaryDirectory(prefix="dd0c-bench-") as folder, ExitStack() as stack:
        settings = Settings(data_dir=Path(folder))
        count = _sqlite_counter(settings)
        if args.mode == "production":
            settings, count = stack.enter_context(_postgres(Path(folder)))
        runtime = build_runtime(settings, roles=frozenset({"ingest", "api"}))
        ids = {}
        for name, (_, deps) in stream.tenants.items():
            ids[name] = runtime.store.create_tenant(name).id
            runtime.store.create_integration(ids[name], "alertmanager", "am", "bench-secret")
            runtime.store.set_dependencies(ids[name], deps)
        moved = datetime.now(UTC) - stream.items[-1][0]
        bodies: list[tuple[str, bytes]] = []
        pending: dict[str, list[dict[str, Any]]] = {}
        for _, tenant, item in stream.items:
            if not isinstance(item, CanonicalAlert):
                continue  # deploys come from other providers
            group = pending.setdefault(tenant, [])
            group.append(_alertmanager_alert(item, moved))
            if len(group) == per_event:
                bodies.append((ids[tenant], _alertmanager_body(group)))
                pending[tenant] = []
        bodies += [(ids[tenant], _alertmanager_body(g)) for tenant, g in pending.items() if g]

        async def fill() -> None:
            runtime.queue.start()
            auth = {"authorization": "Bearer bench-secret"}
            # One at a time until each tenant's lookups are cached: a cache miss hops
            # to a thread, which would let later deliveries overtake earlier ones, and
            # the stream's order must be the queue's for results to repeat.
            seen: set[str] = set()
            start = 0
            while start < len(bodies) and len(seen) < len(ids):
                tenant_id, body = bodies[start]
                await runtime.ingest.receive(tenant_id, "alertmanager", None, auth, body)
                seen.add(tenant_id)
                start += 1
            for chunk in range(start, len(bodies), 500):
                await asyncio.gather(
                    *(
                        runtime.ingest.receive(tenant_id, "alertmanager", None, auth, body)
                        for tenant_id, body in bodies[chunk : chunk + 500]
                    )
                )
            runtime.queue.close()

        progress(f"worker: enqueueing {len(bodies)} events of up to {per_event} alert(s) ...")
        asyncio.run(fill())
        worker = Worker(runtime.store, runtime.queue, runtime.archive, batch_size=args.batch)
        progress("worker: draining ...")
        started = time.perf_counter()
        done = 0
        while handled := worker.run_once():
            done += handled
        elapsed = time.perf_counter() - started
        counts = {
            table: count(f"SELECT count(*) FROM {table}")
            for table in ("alerts", "decisions", "dead_letters")
        }
        counts["incidents"] = count("SELECT count(*) FROM incidents WHERE merged_into IS NULL")
        emit(
            {
                "bench": f"worker_{'postgresql' if args.mode == 'production' else 'sqlite'}",
                "alerts_per_event": per_event,
                "events": done,
                "alerts": stream.alerts,
                "tenants": args.tenants,
                "stream_hours": round(hours, 2),
                "alert_records": counts["alerts"],
                "incidents": counts["incidents"],
                "decisions": counts["decisions"],
                "dead_letters": counts["dead_letters"],
                "left_in_queue": runtime.queue.depth().messages,  # retrying after a failure
                "batch_size": args.batch,
                "durability": "fsync per commit",
                "elapsed_s": round(elapsed, 3),
                "events_per_s": round(done / elapsed),
                "alerts_per_s": round(stream.alerts / elapsed),
            }
        )


Counter = Callable[[str], int]


def _sqlite_counter(settings: Settings) -> Counter:
    def count(query: str) -> int:
        with sqlite3.connect(sqlite_path(settings.resolved_database_url)) as db:
            return int(db.execute(query).fetchone()[0])

    return count


@contextmanager
def _postgres(folder: Path) -> Iterator[tuple[Settings, Counter]]:
    """A real PostgreSQL (durable defaults) migrated as the owner role; the worker
    connects as the application role, under row-level security, as in production."""
    sys.path.insert(0, str(ROOT / "tests"))
    from cryptography.fernet import Fernet  # noqa: PLC0415

    from servers import APP, OWNER, PostgresServer  # noqa: PLC0415

    server = PostgresServer(folder / "pg", durable=True)
    server.start()
    try:
        server.create_database("dd0c")
        settings = Settings(
            data_dir=folder,
            database_url=server.dsn("dd0c", APP),
            migration_database_url=server.dsn("dd0c", OWNER),
            secret_key=Fernet.generate_key().decode(),
            jwt_secret=secrets.token_urlsafe(48),
        )
        migrate(settings)

        def count(query: str) -> int:
            with psycopg.connect(server.dsn("dd0c", OWNER)) as conn:
                row = conn.execute(query).fetchone()  # type: ignore[arg-type]
            return int(row[0]) if row else 0

        yield settings.model_copy(update={"migration_database_url": ""}), count
    finally:
        server.stop()


def _alertmanager_alert(alert: CanonicalAlert, moved: timedelta) -> dict[str, Any]:
    def stamp(moment: datetime) -> str:
        return (moment + moved).isoformat().replace("+00:00", "Z")

    body: dict[str, Any] = {
        "status": str(alert.status),
        "labels": {**alert.labels, "service": alert.service, "severity": str(alert.severity)},
        "annotations": {"summary": alert.title},
        "startsAt": stamp(alert.started_at),
        "fingerprint": alert.fingerprint,
    }
    if alert.ended_at is not None:
        body["endsAt"] = stamp(alert.ended_at)
    return body


def _alertmanager_body(alerts: list[dict[str, Any]]) -> bytes:
    firing = any(a["status"] == "firing" for a in alerts)
    return json.dumps(
        {
            "version": "4",
            "status": "firing" if firing else "resolved",
            "receiver": "dd0c",
            "groupLabels": {},
            "commonLabels": {},
            "alerts": alerts,
        }
    ).encode()


# --- (c) the scenario suite --------------------------------------------------------------


def bench_scenarios(suite: ModuleType) -> None:
    totals = {"all": suite.Quality(), "storm": suite.Quality()}
    for scenario in suite.all_scenarios():
        actual = suite.run_in_memory(scenario)
        quality = suite.quality(scenario, actual)
        emit(
            {
                "bench": "scenario",
                "scenario": scenario.name,
                "storm": scenario.storm,
                **_figures(quality),
                "expected_incidents": len(scenario.expected),
                "expected_pages": sum(e.pages for e in scenario.expected),
                "matches_expected": not suite.mismatches(scenario, actual),
            }
        )
        for key in ("all", "storm") if scenario.storm else ("all",):
            totals[key] += quality
    for key, total in totals.items():
        record: dict[str, Any] = {"bench": "scenarios_total", "scope": key, **_figures(total)}
        if key == "storm":
            record["targets"] = {"noise_reduction": NOISE_TARGET, "precision": PRECISION_TARGET}
            record["meets_targets"] = (
                total.noise_reduction >= NOISE_TARGET and total.precision >= PRECISION_TARGET
            )
        emit(record)


def _figures(quality: Any) -> dict[str, Any]:
    return {
        "alerts": quality.alerts,
        "alert_records": quality.alert_records,
        "incidents": quality.incidents,
        "pages": quality.pages,
        "noise_reduction": round(quality.noise_reduction, 4),
        "precision": round(quality.precision, 4),
        "recall": round(quality.recall, 4),
        "pairs": {
            "together": quality.together,
            "predicted": quality.predicted,
            "wanted": quality.wanted,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("all", "engine", "worker", "scenarios"), default="all")
    parser.add_argument("--alerts", type=int, default=200_000, help="engine: stream length")
    parser.add_argument("--services", type=int, default=50, help="services per tenant")
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--hours", type=float, default=72.0, help="engine: event-time span")
    parser.add_argument("--batch", type=int, default=500, help="batch size (as the worker's)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--mode",
        choices=("embedded", "production"),
        default="embedded",
        help="worker: SQLite, or PostgreSQL + pgmq as the application role",
    )
    parser.add_argument("--profile", action="store_true", help="engine: cProfile top costs")
    parser.add_argument("--top", type=int, default=15, help="profile rows to print")
    parser.add_argument("--worker-alerts", type=int, default=20_000, help="worker: single")
    parser.add_argument("--worker-group-alerts", type=int, default=50_000, help="worker: groups")
    args = parser.parse_args()
    suite = _suite()
    if args.part in ("all", "scenarios"):
        bench_scenarios(suite)
    if args.part in ("all", "engine"):
        bench_engine(args, suite)
    if args.part in ("all", "worker"):
        bench_worker(args, 1, args.worker_alerts)
        bench_worker(args, 100, args.worker_group_alerts)


if __name__ == "__main__":
    main()
