"""Production mode scaled out, for real: `dd0c-alert ingest` and `dd0c-alert correlate`
processes against one PostgreSQL (pgmq) and one Redis.

- A storm of 20,000 alert notifications through two ingest processes and three
  correlate processes: every accepted alert is stored exactly once, and the incidents
  equal those the embedded single process makes of the same stream.
- A correlate process SIGKILLed mid-batch: its messages reappear after the visibility
  timeout and are processed once.
- Redis SIGKILLed during a run: processing goes on and the results stay correct.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.web.app import create_app
from servers import APP, OWNER, PostgresServer, RedisServer, free_port
from storm import Storm, make_storm

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).parent / "dd0c-alert"
SECRET = "storm-secret"


@dataclass
class Cluster:
    """One database, one Redis, and the role processes started against them."""

    pg: PostgresServer
    database: str
    redis: RedisServer
    env: dict[str, str]
    logs: Path
    tenant_ids: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def start(self, name: str, role: str, **env: str) -> None:
        args = [str(CLI), role]
        if role in ("ingest", "api"):
            self.ports[name] = free_port()
            args += ["--port", str(self.ports[name])]
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(
                args, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        if name in self.ports:
            self._wait_healthy(name)

    def _wait_healthy(self, name: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            assert self.processes[name].poll() is None, f"{name} exited:\n{self.log(name)}"
            assert time.monotonic() < deadline, f"{name} never got healthy:\n{self.log(name)}"
            try:
                url = f"http://127.0.0.1:{self.ports[name]}/healthz"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for name, process in list(self.processes.items()):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill(name)
        self.processes.clear()

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        """As the owner, which row-level security does not restrict."""
        with psycopg.connect(self.pg.dsn(self.database, OWNER), autocommit=True) as conn:
            return list(conn.execute(query, params).fetchall())  # type: ignore[arg-type]

    def waiting(self) -> int:
        [(length,)] = self.sql("SELECT queue_length FROM pgmq.metrics('dd0c_ingest')")
        return int(length)  # type: ignore[call-overload]

    def wait_processed(self, alerts: int, timeout: float = 240) -> None:
        """Until the queue is empty and the stored repeat counts add up to ``alerts``."""
        deadline = time.monotonic() + timeout
        while True:
            [(stored,)] = self.sql("SELECT coalesce(sum(repeat_count), 0) FROM alerts")
            if not self.waiting() and stored == alerts:
                return
            dead = self.sql("SELECT count(*) FROM dead_letters")[0][0]
            assert not dead, f"{dead} dead letters: {self.sql('SELECT error FROM dead_letters')}"
            for name, process in self.processes.items():
                assert process.poll() is None, f"{name} died:\n{self.log(name)}"
            assert time.monotonic() < deadline, (
                f"not processed: {stored} of {alerts} stored, {self.waiting()} queued"
            )
            time.sleep(0.2)

    def incidents(self) -> dict[str, set[frozenset[str]]]:
        """Tenant name -> each incident's alert fingerprints."""
        names = {tenant_id: name for name, tenant_id in self.tenant_ids.items()}
        rows = self.sql("SELECT tenant_id, incident_id, fingerprint FROM alerts")
        return _group(names, rows)


def _own(fingerprint: object) -> str:
    """The storm's fingerprint: Alertmanager's own, as sent."""
    return str(fingerprint).removeprefix("alertmanager:")


def _group(names: dict[str, str], rows: list[tuple[object, ...]]) -> dict[str, set[frozenset[str]]]:
    grouped: dict[tuple[str, str], set[str]] = {}
    for tenant_id, incident_id, fingerprint in rows:
        grouped.setdefault((str(tenant_id), str(incident_id)), set()).add(_own(fingerprint))
    result: dict[str, set[frozenset[str]]] = {}
    for (tenant_id, _), fingerprints in grouped.items():
        result.setdefault(names[tenant_id], set()).add(frozenset(fingerprints))
    return result


@pytest.fixture
def cluster(pg_server: PostgresServer, pg_database: str, tmp_path: Path) -> Iterator[Cluster]:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
    env.update(
        DATABASE_URL=pg_server.dsn(pg_database, APP),
        REDIS_URL=redis.url,
        DD0C_SECRET_KEY=Fernet.generate_key().decode(),
        DD0C_JWT_SECRET=secrets.token_urlsafe(48),
        DD0C_DATA_DIR=str(tmp_path / "data"),
        DD0C_LOG_LEVEL="warning",
        DD0C_WORKER_POLL_SECONDS="0.05",
        DD0C_RATE_LIMIT_PER_SECOND="0",
        DD0C_SUGGEST_INTERVAL_SECONDS="0",
    )
    logs = tmp_path / "logs"
    logs.mkdir()
    built = Cluster(pg_server, pg_database, redis, env, logs)
    try:
        yield built
    finally:
        built.stop_all()
        redis.kill()


def settings_for(cluster: Cluster) -> Settings:
    return Settings(
        database_url=cluster.env["DATABASE_URL"],
        secret_key=cluster.env["DD0C_SECRET_KEY"],
        jwt_secret=cluster.env["DD0C_JWT_SECRET"],
        data_dir=Path(cluster.env["DD0C_DATA_DIR"]),
    )


def create_tenants(cluster: Cluster, storm: Storm) -> None:
    store = build_runtime(settings_for(cluster), roles=frozenset()).store
    for name in storm.tenants:
        tenant = store.create_tenant(name)
        store.create_integration(tenant.id, "alertmanager", "am", SECRET)
        store.set_dependencies(tenant.id, storm.dependencies[name])
        cluster.tenant_ids[name] = tenant.id


async def deliver(
    ports: list[int], tenant_ids: dict[str, str], deliveries: list[tuple[str, bytes]]
) -> set[str]:
    """POST every delivery, round-robin over the ingest processes; the accepted ids."""
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    gate = asyncio.Semaphore(32)
    async with httpx.AsyncClient(timeout=60) as client:

        async def post(n: int, tenant: str, body: bytes) -> str:
            port = ports[n % len(ports)]
            url = f"http://127.0.0.1:{port}/v1/wh/{tenant_ids[tenant]}/alertmanager"
            async with gate:
                response = await client.post(url, content=body, headers=headers)
            assert response.status_code == 202, response.text
            return str(response.json()["event_id"])

        ids = await asyncio.gather(
            *(post(n, tenant, body) for n, (tenant, body) in enumerate(deliveries))
        )
    return set(ids)


def embedded_incidents(storm: Storm, tmp_path: Path) -> dict[str, set[frozenset[str]]]:
    """The same stream through the embedded single process (SQLite, one worker)."""
    settings = Settings(data_dir=tmp_path / "embedded", secret_key="", rate_limit_per_second=0)
    runtime = build_runtime(settings)
    ids: dict[str, str] = {}
    with TestClient(create_app(runtime)) as client:
        for name in storm.tenants:
            ids[name] = runtime.store.create_tenant(name).id
            runtime.store.create_integration(ids[name], "alertmanager", "am", SECRET)
            runtime.store.set_dependencies(ids[name], storm.dependencies[name])
        headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
        for tenant, body in storm.deliveries:
            response = client.post(
                f"/v1/wh/{ids[tenant]}/alertmanager", content=body, headers=headers
            )
            assert response.status_code == 202, response.text
        deadline = time.monotonic() + 240
        while runtime.queue.depth().messages:
            assert time.monotonic() < deadline, "embedded mode did not drain"
            time.sleep(0.05)
        engine = runtime.store._read
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT tenant_id, incident_id, fingerprint FROM alerts"
            ).fetchall()
    names = {tenant_id: name for name, tenant_id in ids.items()}
    return _group(names, [tuple(row) for row in rows])


def assert_stored_exactly_once(cluster: Cluster, storm: Storm, accepted: set[str]) -> None:
    names = {tenant_id: name for name, tenant_id in cluster.tenant_ids.items()}
    rows = cluster.sql("SELECT tenant_id, fingerprint, repeat_count, event_id FROM alerts")
    per_key = Counter((names[str(t)], _own(fp)) for t, fp, _, _ in rows)
    duplicated = [key for key, n in per_key.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} alerts stored twice, e.g. {duplicated[:3]}"
    assert set(per_key) == set(storm.sends), "alerts lost or invented"
    counts = {(names[str(t)], _own(fp)): n for t, fp, n, _ in rows}
    wrong = {key: (counts[key], n) for key, n in storm.sends.items() if counts[key] != n}
    assert not wrong, f"repeat counts (stored, sent) wrong for {len(wrong)}: {list(wrong)[:3]}"
    assert {str(event_id) for *_, event_id in rows} <= accepted


def test_two_ingest_three_correlate_store_once_and_group_like_embedded(
    cluster: Cluster, tmp_path: Path
) -> None:
    storm = make_storm()
    assert storm.alerts >= 20_000
    create_tenants(cluster, storm)
    with ExitStack():
        for n in range(2):
            cluster.start(f"ingest-{n}", "ingest")
        for n in range(3):
            cluster.start(f"correlate-{n}", "correlate")
        ports = [cluster.ports["ingest-0"], cluster.ports["ingest-1"]]
        accepted = asyncio.run(deliver(ports, cluster.tenant_ids, storm.deliveries))
        assert len(accepted) == len(storm.deliveries)
        cluster.wait_processed(storm.alerts)
    assert_stored_exactly_once(cluster, storm, accepted)
    produced = cluster.incidents()
    assert produced == storm.incidents
    assert produced == embedded_incidents(storm, tmp_path)


def leased(cluster: Cluster) -> int:
    """Messages read by a consumer and not yet acknowledged (their visibility timeout
    lies in the future)."""
    [(count,)] = cluster.sql("SELECT count(*) FROM pgmq.q_dd0c_ingest WHERE vt > now()")
    return int(count)  # type: ignore[call-overload]


def test_correlate_killed_mid_batch_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    storm = make_storm(tenants=2, problems=12, alerts_per_problem=40)
    create_tenants(cluster, storm)
    cluster.start("ingest", "ingest")
    accepted = asyncio.run(deliver([cluster.ports["ingest"]], cluster.tenant_ids, storm.deliveries))
    slow = {"DD0C_WORKER_BATCH_SIZE": "4", "DD0C_WORKER_LEASE_SECONDS": "3"}
    for attempt in range(5):
        cluster.start(f"correlate-{attempt}", "correlate", **slow)
        deadline = time.monotonic() + 30
        while not leased(cluster):
            assert time.monotonic() < deadline, cluster.log(f"correlate-{attempt}")
            time.sleep(0.005)
        cluster.kill(f"correlate-{attempt}")
        in_flight = leased(cluster)  # the dead process can acknowledge nothing now
        if in_flight:
            break
    else:
        pytest.fail("no kill landed while a batch was in flight")
    stored = cluster.sql("SELECT coalesce(sum(repeat_count), 0) FROM alerts")[0][0]
    assert stored < storm.alerts, "the kill came after everything was processed"
    cluster.start("survivor", "correlate", **slow)
    cluster.wait_processed(storm.alerts)
    assert_stored_exactly_once(cluster, storm, accepted)
    assert cluster.incidents() == storm.incidents


def test_redis_killed_mid_run_processing_goes_on_correctly(cluster: Cluster) -> None:
    storm = make_storm(tenants=2, problems=10, alerts_per_problem=40)
    create_tenants(cluster, storm)
    cluster.start("ingest", "ingest", DD0C_RATE_LIMIT_PER_SECOND="100000")
    for n in range(2):
        cluster.start(f"correlate-{n}", "correlate")
    port = cluster.ports["ingest"]
    half = len(storm.deliveries) // 2
    accepted = asyncio.run(deliver([port], cluster.tenant_ids, storm.deliveries[:half]))
    cluster.redis.kill()
    accepted |= asyncio.run(deliver([port], cluster.tenant_ids, storm.deliveries[half:]))
    cluster.wait_processed(storm.alerts)
    assert_stored_exactly_once(cluster, storm, accepted)
    assert cluster.incidents() == storm.incidents
    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"].startswith("degraded")
