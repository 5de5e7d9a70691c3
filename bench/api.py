"""REST API latency on a large history: incident list, detail, search and analytics.

The history is made the way production makes it: canonical alerts go through the
worker's own ``persist`` (fold, correlate, rollups, decisions), in event-time order,
for one large tenant (``--alerts``, default 1,000,000 over 90 days, about ten alerts an
incident) and 50 small ones beside it. Requests then go through the ASGI app
in-process with an admin key, so the figures are server time (no network). Prints one
JSON line per store; progress on stderr. Not a test.

    .venv/bin/python bench/api.py [--alerts 1000000] [--store sqlite|postgresql|both]
        [--keep DIR]

``--keep DIR`` builds the history in ``DIR/<store>`` (the SQLite file, or a PostgreSQL
cluster with its own data folder) and leaves it there; a later run with the same
``DIR``, of this bench or of ``bench/pages.py``, measures it again without rebuilding
(for trying an index or a query shape on the same data). Migrations are applied to a
kept history on every run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from cryptography.fernet import Fernet  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from dd0c_alert.app import build_runtime  # noqa: E402
from dd0c_alert.config import Settings  # noqa: E402
from dd0c_alert.domain.ids import new_id  # noqa: E402
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity  # noqa: E402
from dd0c_alert.pipeline.persist import persist  # noqa: E402
from dd0c_alert.pipeline.runtime import Runtime  # noqa: E402
from dd0c_alert.storage.ports import BatchOutcome  # noqa: E402
from dd0c_alert.web.app import create_app  # noqa: E402

SERVICES = 100
PER_INCIDENT = 10
SAMPLES = 60
CHUNK = 2000


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def history(tenant_id: str, alerts: int, days: int, rnd: random.Random) -> Iterator[CanonicalAlert]:
    """Bursts of ``PER_INCIDENT`` alerts on one service, spread over ``days``, in time
    order; a third of them resolved a few minutes later."""
    start = datetime.now(UTC) - timedelta(days=days)
    bursts = max(1, alerts // PER_INCIDENT)
    gap = timedelta(days=days) / bursts
    severities = list(Severity)
    for burst in range(bursts):
        at = start + gap * burst
        service = f"svc-{rnd.randrange(SERVICES):03d}"
        for n in range(PER_INCIDENT):
            moment = at + timedelta(seconds=n * 5)
            resolved = rnd.random() < 0.33
            yield CanonicalAlert(
                tenant_id=tenant_id,
                source=rnd.choice(("alertmanager", "datadog", "grafana")),
                source_ref=f"{burst}-{n}",
                fingerprint=f"fp-{service}-{n % 5}-{burst}",
                status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
                severity=rnd.choice(severities),
                title=f"{service} check {n % 5} failing",
                started_at=moment,
                received_at=moment,
                ended_at=moment + timedelta(minutes=3) if resolved else None,
                service=service,
                labels={"team": f"team-{rnd.randrange(12)}", "region": "eu-1"},
                id=new_id(),
                event_id=new_id(),
            )


def fill(runtime: Runtime, tenant_id: str, alerts: int, days: int, rnd: random.Random) -> None:
    started, done, chunk = time.monotonic(), 0, []
    for alert in history(tenant_id, alerts, days, rnd):
        chunk.append(alert)
        if len(chunk) >= CHUNK:
            persist(runtime.store, BatchOutcome(alerts=chunk))
            done += len(chunk)
            chunk = []
            if done % 100_000 == 0:
                rate = done / (time.monotonic() - started)
                log(f"  {done:,} alerts stored ({rate:,.0f}/s)")
    if chunk:
        persist(runtime.store, BatchOutcome(alerts=chunk))


def timed(client: TestClient, paths: list[str], headers: dict[str, str]) -> dict[str, float]:
    took = []
    for path in paths:
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        took.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path}: {response.status_code} {response.text[:300]}")
    took.sort()
    return {
        "p50_ms": round(took[len(took) // 2] * 1000, 1),
        "p95_ms": round(took[min(len(took) - 1, int(len(took) * 0.95))] * 1000, 1),
    }


def measure(runtime: Runtime, key: str, rnd: random.Random) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(runtime)) as client:
        first = client.get("/v1/incidents?limit=100", headers=headers).json()["items"]
        ids = [i["id"] for i in first]
        cursor = client.get("/v1/incidents?limit=100", headers=headers).json()["next_cursor"]
        if cursor:
            more = client.get(f"/v1/incidents?limit=100&cursor={cursor}", headers=headers).json()
            ids += [i["id"] for i in more["items"]]
        lists = [
            "/v1/incidents?limit=50",
            "/v1/incidents?status=open&limit=50",
            f"/v1/incidents?service=svc-{rnd.randrange(SERVICES):03d}&limit=50",
            "/v1/incidents?severity=critical&limit=50",
        ]
        searches = [f"/v1/incidents?q=svc-{rnd.randrange(SERVICES):03d}&limit=50" for _ in range(8)]
        searches += ["/v1/incidents?q=team-3&limit=50", "/v1/incidents?q=check%202&limit=50"]
        return {
            "incident_list": timed(client, [rnd.choice(lists) for _ in range(SAMPLES)], headers),
            "incident_detail": timed(
                client, [f"/v1/incidents/{rnd.choice(ids)}" for _ in range(SAMPLES)], headers
            ),
            "search": timed(client, [rnd.choice(searches) for _ in range(SAMPLES)], headers),
            **{
                f"analytics_{w}": timed(
                    client, [f"/v1/analytics?window={w}"] * (SAMPLES // 3), headers
                )
                for w in ("7d", "30d", "90d")
            },
        }


@contextmanager
def store(kind: str, folder: Path) -> Iterator[tuple[Settings, str | None]]:
    """The settings of a store in ``folder``, and for PostgreSQL the owner's URL."""
    if kind == "sqlite":
        yield Settings(data_dir=folder, secret_key="", suggest_interval_seconds=0), None
        return
    from dd0c_alert.storage.migrate import grant_app_role, upgrade  # noqa: PLC0415
    from servers import APP, OWNER, PostgresServer  # noqa: PLC0415

    kept = (folder / "key").exists()
    pg = PostgresServer(folder / "pg", durable=True, keep=True)
    pg.start()
    try:
        if not kept:
            pg.drop_database("dd0c")  # a fill that did not finish
            pg.create_database("dd0c")
        import sqlalchemy as sa  # noqa: PLC0415

        owner = sa.create_engine(pg.url("dd0c", OWNER))
        upgrade(owner)
        grant_app_role(owner, APP)
        owner.dispose()
        secrets = folder / "secrets.json"
        if not secrets.exists():
            keys = [Fernet.generate_key().decode() for _ in range(2)]
            secrets.write_text(json.dumps(keys))
        secret_key, jwt_secret = json.loads(secrets.read_text())
        settings = Settings(
            data_dir=folder,
            database_url=pg.url("dd0c", APP),
            secret_key=secret_key,
            jwt_secret=jwt_secret,
            suggest_interval_seconds=0,
        )
        yield settings, pg.url("dd0c", OWNER)
    finally:
        pg.stop()


def analyze(owner_url: str) -> None:
    """PostgreSQL: what autovacuum does some time after a bulk load, done now. Until
    then the statistics end where its last pass saw the tables, before the newest days
    were stored. Only the owner may analyze the tables."""
    import sqlalchemy as sa  # noqa: PLC0415

    owner = sa.create_engine(owner_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
    owner.dispose()


@dataclass(frozen=True)
class History:
    runtime: Runtime
    tenant_id: str
    key: str
    fill_s: int | None


@contextmanager
def built_history(kind: str, alerts: int, keep: Path | None) -> Iterator[History]:
    """The large history, built afresh or found in ``keep`` from an earlier run.

    After a fill the planner statistics are refreshed and each day's top lists made,
    as the scheduled jobs' pass does on a real install (and PostgreSQL's autovacuum
    would after a bulk load): the figures are those of a settled history."""
    rnd = random.Random(42)
    with tempfile.TemporaryDirectory(prefix="dd0c-bench-api-") as tmp:
        folder = keep / kind if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        with store(kind, folder) as (s, owner_url):
            runtime = build_runtime(s, roles=frozenset({"api"}))
            try:
                if (folder / "key").exists():
                    tenant_id, key = json.loads((folder / "key").read_text())
                    log(f"{kind}: measuring the history kept in {folder}")
                    yield History(runtime, tenant_id, key, None)
                    return
                big = runtime.store.create_tenant("big")
                key = runtime.store.create_api_key(big.id, "bench")
                log(f"{kind}: storing {alerts:,} alerts for one tenant")
                started = time.monotonic()
                fill(runtime, big.id, alerts, 90, rnd)
                for n in range(50):
                    small = runtime.store.create_tenant(f"small-{n}")
                    fill(runtime, small.id, max(PER_INCIDENT, alerts // 1000), 90, rnd)
                filled = time.monotonic() - started
                log(f"{kind}: history stored in {filled:.0f} s; measuring")
                runtime.store.refresh_statistics()
                if owner_url is not None:
                    analyze(owner_url)
                for tenant in runtime.store.list_tenants():
                    runtime.store.product().list_top_days(tenant.id)
                if keep is not None:
                    (folder / "key").write_text(json.dumps([big.id, key]))
                yield History(runtime, big.id, key, round(filled))
            finally:
                runtime.stop()


def run(
    kind: str, alerts: int, keep: Path | None, measured: Callable[[History], dict[str, Any]]
) -> dict[str, Any]:
    """One store's figures: ``measured`` on the history (``pages.py`` shares this)."""
    with built_history(kind, alerts, keep) as h:
        result: dict[str, Any] = {"store": kind, "alerts": alerts}
        if h.fill_s is not None:
            result["fill_s"] = h.fill_s
        return result | measured(h)


def measure_api(h: History) -> dict[str, Any]:
    return measure(h.runtime, h.key, random.Random(42))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=1_000_000)
    parser.add_argument("--store", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="build the history here and keep it")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.store == "both" else [args.store]
    for kind in kinds:
        print(json.dumps(run(kind, args.alerts, args.keep, measure_api)), flush=True)


if __name__ == "__main__":
    main()
