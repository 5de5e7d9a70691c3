"""Crash durability, for real: a `dd0c-alert serve` process is SIGKILLed and restarted.

Acceptance (design §2): a 2xx from ingestion means the event is committed to the queue,
and processing is idempotent per event id. So after a SIGKILL at any moment, a restart
on the same data folder processes every accepted event exactly once: no alert is lost,
no alert row is duplicated, and ``repeat_count`` counts every accepted repeat once.

Each webhook here carries firing alerts only, and each alert occurrence adds exactly one
to the ``repeat_count`` of its row (1 for a new row). That gives an exact ledger:
``sum(repeat_count)`` over the tenant's alerts must equal the number of alert occurrences
in accepted events. The on-disk state right after the kill is also inspected (on a copy,
so the restart still recovers the crashed files itself): what was processed plus what is
still queued must be everything that was accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.storage.sqlite_queue import queue_file

pytestmark = pytest.mark.slow

CLI = Path(sys.executable).parent / "dd0c-alert"
SECRET = "durability-secret"
STARTS_AT = "2025-06-01T12:00:00Z"


# --- helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Deployment:
    """A data folder with a tenant and an Alertmanager integration, made by the CLI."""

    data_dir: Path
    env: dict[str, str]
    tenant_id: str
    api_key: str
    logs: Path

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [str(CLI), *args], env=self.env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, f"dd0c-alert {' '.join(args)}: {result.stderr}"
        return result.stdout

    @property
    def db(self) -> Path:
        return self.data_dir / "dd0c.db"


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
    env.pop("DATABASE_URL", None)
    env.update(DD0C_DATA_DIR=str(data_dir), DD0C_LOG_LEVEL="warning")
    bare = Deployment(data_dir, env, "", "", tmp_path / "logs")
    bare.logs.mkdir()
    created = json.loads(bare.cli("tenant", "create", "durability", "--json"))
    bare.tenant_id, bare.api_key = created["tenant_id"], created["api_key"]
    integration = json.loads(
        bare.cli(
            "integration",
            "create",
            "--tenant",
            bare.tenant_id,
            "--provider",
            "alertmanager",
            "--secret",
            SECRET,
            "--json",
        )
    )
    assert integration["webhook_url"].endswith(
        f"/v1/wh/{bare.tenant_id}/alertmanager/{integration['integration_id']}"
    )
    return bare


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL to serve and its background process at once (the machine losing
        power): no shutdown hook, no flush, no graceful anything."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@contextmanager
def serve(deployment: Deployment, name: str, **env: str) -> Iterator[Server]:
    """Run `dd0c-alert serve` until it answers /healthz; always gone on exit."""
    port = free_port()
    log = deployment.logs / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)],
            env={**deployment.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, for kill()
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 60  # a loaded CI machine starts slowly
        while True:
            assert process.poll() is None, f"serve exited early:\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"serve never got healthy:\n{server.log_tail()}"
            try:
                if httpx.get(f"{server.base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        yield server
    finally:
        server.kill()


def am_webhook(fingerprints: list[str]) -> bytes:
    """An Alertmanager notification (version 4) with one firing alert per fingerprint."""
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="DurabilityProbe"}',
            "status": "firing",
            "receiver": "dd0c",
            "groupLabels": {"alertname": "DurabilityProbe"},
            "commonLabels": {"alertname": "DurabilityProbe", "severity": "warning"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "DurabilityProbe",
                        "severity": "warning",
                        "service": "probe",
                        "instance": fp,
                    },
                    "annotations": {"summary": f"probe {fp}"},
                    "startsAt": STARTS_AT,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": fp,
                }
                for fp in fingerprints
            ],
        }
    ).encode()


async def post_all(
    base_url: str,
    tenant_id: str,
    bodies: list[bytes],
    then: Callable[[], None] = lambda: None,
    concurrency: int = 32,
) -> list[httpx.Response]:
    """POST all bodies but the last, ``concurrency`` at a time, then the last one alone;
    call ``then`` the moment its response is in (before even closing the connections)."""
    url = f"/v1/wh/{tenant_id}/alertmanager"
    headers = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def send(body: bytes) -> httpx.Response:
            async with gate:
                return await client.post(url, content=body, headers=headers)

        responses = await asyncio.gather(*(send(body) for body in bodies[:-1]))
        responses.append(await send(bodies[-1]))
        then()
        return responses


@dataclass(frozen=True)
class Snapshot:
    """The crashed process's database, read from a copy."""

    queued: list[str]  # event ids still in the queue
    leased: int  # claimed by the worker, not yet acknowledged: the kill hit mid-batch
    occurrences: int  # sum(repeat_count): alert occurrences already processed
    alert_rows: int


def snapshot(deployment: Deployment, into: Path) -> Snapshot:
    """Copy the database and queue files as the kill left them (WAL included) and read
    the copies, so the next `serve` still has to recover the crashed files on its own.
    An event the kill caught between the worker's commit and the queue's release is
    both stored and queued; the database's inbox (``processed_events``) says so, and
    it counts as processed (the restart drops it from the queue)."""
    into.mkdir()
    for database in (deployment.db, queue_file(deployment.db)):
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{database}{suffix}")
            if source.exists():
                shutil.copyfile(source, into / source.name)
    conn = sqlite3.connect(into / deployment.db.name)
    try:
        conn.execute("ATTACH DATABASE ? AS queue", (str(into / queue_file(deployment.db).name),))
        unsettled = " WHERE event_id NOT IN (SELECT event_id FROM main.processed_events)"
        queued = [
            row[0] for row in conn.execute(f"SELECT event_id FROM queue.ingest_queue{unsettled}")
        ]
        (leased,) = conn.execute(
            f"SELECT count(*) FROM queue.ingest_queue{unsettled} AND visible_at > 0.5"
        ).fetchone()
        occurrences, rows = conn.execute(
            "SELECT coalesce(sum(repeat_count), 0), count(*) FROM alerts WHERE tenant_id = ?",
            (deployment.tenant_id,),
        ).fetchone()
    finally:
        conn.close()
    return Snapshot(queued, leased, occurrences, rows)


def queue_waiting(server: Server) -> int:
    checks = httpx.get(f"{server.base_url}/readyz", timeout=5).json()["checks"]
    # "ok (12 waiting, oldest 0.3 s)"
    return int(checks["queue"].split("(")[1].split()[0])


def wait_drained(server: Server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while queue_waiting(server):
        assert server.process.poll() is None, f"serve died:\n{server.log_tail()}"
        assert time.monotonic() < deadline, f"queue not drained:\n{server.log_tail()}"
        time.sleep(0.05)


def all_alerts(server: Server, api_key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    headers = {"Authorization": f"Bearer {api_key}"}
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = httpx.get(
            f"{server.base_url}/v1/alerts", params=params, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def assert_exactly_once(
    deployment: Deployment, server: Server, expected: Counter[str], accepted: set[str]
) -> None:
    """Every fingerprint is one alert row whose repeat_count is its accepted sends."""
    wait_drained(server)
    alerts = all_alerts(server, deployment.api_key)
    rows_per_fp = Counter(alert["source_ref"] for alert in alerts)
    duplicated = {fp: n for fp, n in rows_per_fp.items() if n > 1}
    assert not duplicated, f"duplicate alert rows: {duplicated}"
    missing = set(expected) - set(rows_per_fp)
    assert not missing, f"{len(missing)} accepted alerts lost, e.g. {sorted(missing)[:5]}"
    assert set(rows_per_fp) == set(expected)
    counts = {alert["source_ref"]: alert["repeat_count"] for alert in alerts}
    wrong = {fp: (counts[fp], n) for fp, n in expected.items() if counts[fp] != n}
    assert not wrong, f"repeat_count (got, expected) wrong for {len(wrong)}: {wrong}"
    assert all(alert["status"] == "firing" for alert in alerts)
    assert {alert["event_id"] for alert in alerts} <= accepted
    assert json.loads(deployment.cli("dlq", "list", "--json")) == []


# --- the acceptance test -----------------------------------------------------------------


def test_sigkill_right_after_202_loses_and_duplicates_nothing(
    deployment: Deployment, tmp_path: Path
) -> None:
    # Alertmanager groups alerts: webhooks carry 4 each. 70 of them repeat one of 20
    # alerts (2..5 sends each) beside 3 new ones. The batch ends with a group of 200 new
    # alerts: the worker needs a good 0.1 s for it, so the kill right after its 202
    # surely finds it unprocessed. (DD0C_WORKER_POLL_SECONDS would not slow the worker
    # down: every enqueue wakes it.)
    repeats = [f"rep{k:02d}" for k in range(20) for _ in range(2 + k % 4)]
    fresh = (f"dist{i:05d}" for i in range(10**5))
    events = [[fp, next(fresh), next(fresh), next(fresh)] for fp in repeats]
    events += [[next(fresh) for _ in range(4)] for _ in range(300 - len(events))]
    random.Random(7).shuffle(events)
    events.append([next(fresh) for _ in range(200)])
    expected = Counter(fp for fingerprints in events for fp in fingerprints)
    total = sum(expected.values())

    bodies = [am_webhook(fingerprints) for fingerprints in events]
    with serve(deployment, "first") as server:
        responses = asyncio.run(
            post_all(server.base_url, deployment.tenant_id, bodies, then=server.kill)
        )
        log_tail = server.log_tail()

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {202: len(events)}, f"{statuses}\n{log_tail}"
    event_ids = [response.json()["event_id"] for response in responses]
    accepted = set(event_ids)
    assert len(accepted) == len(event_ids)
    alerts_in = {event_id: len(fps) for event_id, fps in zip(event_ids, events, strict=True)}

    crashed = snapshot(deployment, tmp_path / "at-kill")
    print(
        f"\nat SIGKILL: {len(crashed.queued)} of {len(events)} accepted events still queued"
        f" ({crashed.leased} leased), {crashed.occurrences}/{total} alerts processed"
    )
    assert event_ids[-1] in crashed.queued, "the kill came too late: nothing to recover"
    # Durable at the moment of the kill: processed + queued == accepted, no stranger.
    assert set(crashed.queued) <= accepted
    assert crashed.occurrences + sum(alerts_in[e] for e in crashed.queued) == total

    with serve(deployment, "restart") as server:
        assert_exactly_once(deployment, server, expected, accepted)


def test_sigkill_while_the_worker_is_mid_batch_processes_everything_once(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Kill `serve` twice while its worker holds a claimed, unacknowledged batch."""
    per_event = 2  # one alert of its own and one of 50 that keep firing
    events = [[f"own{i:04d}", f"hot{i % 50:02d}"] for i in range(1000)]
    expected = Counter(fp for fingerprints in events for fp in fingerprints)
    total = sum(expected.values())
    accepted = prefill(deployment, [am_webhook(fps) for fps in events])

    kills_mid_batch = 0
    previous = 0
    for round_ in range(2):
        # The worker's claims start at one event and double while they are quick; past
        # the first ~130 events of a run they are tens of events, each held for tens of
        # milliseconds before the store commits them: a wide window to kill it in.
        with serve(deployment, f"round{round_}", DD0C_WORKER_BATCH_SIZE="100") as server:
            progressed = wait_for_progress_and_lease(deployment, server, previous + 130 * per_event)
            server.kill()
        crashed = snapshot(deployment, tmp_path / f"kill{round_}")
        print(
            f"\nround {round_}: killed with {len(crashed.queued)} events queued,"
            f" {crashed.leased} leased, {crashed.occurrences}/{total} occurrences processed"
        )
        assert set(crashed.queued) <= accepted
        # Whatever the worker had claimed but not acknowledged counts as not processed:
        # its half-done batch left no trace.
        assert crashed.occurrences + len(crashed.queued) * per_event == total
        assert crashed.occurrences >= progressed
        kills_mid_batch += crashed.leased > 0
        previous = crashed.occurrences
        if not crashed.queued:
            break
    assert kills_mid_batch, "no kill landed while the worker held a batch"

    with serve(deployment, "final") as server:
        assert_exactly_once(deployment, server, expected, accepted)


def prefill(deployment: Deployment, bodies: list[bytes]) -> set[str]:
    """Accept events with no worker running (the ingest role), so a later `serve` starts
    with a deep backlog."""
    settings = Settings(data_dir=deployment.data_dir, database_url="", secret_key="")
    runtime = build_runtime(settings, roles=frozenset({"ingest", "api"}))
    runtime.start()
    headers = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}

    async def put_all() -> list[str]:
        outcomes = await asyncio.gather(
            *(
                runtime.ingest.receive(deployment.tenant_id, "alertmanager", None, headers, body)
                for body in bodies
            )
        )
        return [outcome.event_id for outcome in outcomes]

    try:
        event_ids = asyncio.run(put_all())
    finally:
        runtime.stop()
    assert len(set(event_ids)) == len(bodies)
    return set(event_ids)


def wait_for_progress_and_lease(deployment: Deployment, server: Server, at_least: int) -> int:
    """Watch the live database until this run stored ``at_least`` occurrences and the
    worker holds a lease on events it has not stored yet. (A lease on events already
    stored, between the store's commit and the queue's release, does not count: a kill
    there leaves nothing half done.)"""
    deadline = time.monotonic() + 20
    conn = sqlite3.connect(f"file:{deployment.db}?mode=ro", uri=True, timeout=5)
    conn.execute("ATTACH DATABASE ? AS queue", (f"file:{queue_file(deployment.db)}?mode=ro",))
    try:
        while True:
            assert server.process.poll() is None, f"serve died:\n{server.log_tail()}"
            assert time.monotonic() < deadline, f"no progress:\n{server.log_tail()}"
            (done,) = conn.execute("SELECT coalesce(sum(repeat_count), 0) FROM alerts").fetchone()
            (unstored_leases,) = conn.execute(
                "SELECT count(*) FROM queue.ingest_queue WHERE visible_at > 0.5"
                " AND event_id NOT IN (SELECT event_id FROM main.processed_events)"
            ).fetchone()
            (left,) = conn.execute("SELECT count(*) FROM queue.ingest_queue").fetchone()
            if not left or (done >= at_least and unstored_leases):
                return int(done)
            time.sleep(0.005)
    finally:
        conn.close()
