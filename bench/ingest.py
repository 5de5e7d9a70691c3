"""Ingest benchmark: drive a running dd0c/alert server with Alertmanager webhooks.

Prints one JSON line per scenario on stdout; progress goes to stderr. Not a test.

    .venv/bin/python bench/ingest.py                      # own server, both scenarios
    .venv/bin/python bench/ingest.py --scenario single --tool python
    .venv/bin/python bench/ingest.py --url http://host:8080 --tenant T --secret S [--api-key K]
    .venv/bin/python bench/ingest.py --mode production --ingest 2 --correlate 2

``--mode production`` starts a real PostgreSQL (with its durable defaults: fsync on)
and Redis, migrates as the owner role, and runs ``--ingest`` ``dd0c-alert ingest`` and
``--correlate`` ``dd0c-alert correlate`` processes; wrk then loads every ingest
process at once, the connections split between them.

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

SCENARIOS = {"single": 1, "group100": 100}
MARK = "@@SEQ@@"  # replaced per request by a unique string, so no two alerts share identity
USER_AGENT = "Alertmanager/0.27.0"


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- payload -----------------------------------------------------------------------------


def body_parts(alerts: int) -> list[str]:
    """An Alertmanager v4 notification with ``alerts`` alerts, split on MARK.

    ``MARK.join(parts)`` with a unique MARK gives every alert a fresh fingerprint and
    ``instance`` label; wrk does the same join with ``table.concat(parts, seq)``.
    """
    common = {
        "alertname": "BenchHighLatency",
        "cluster": "bench-cluster",
        "namespace": "payments",
        "service": "checkout",
        "severity": "warning",
    }
    items = [
        {
            "status": "firing",
            "labels": {**common, "instance": f"{MARK}-{i}", "pod": f"checkout-{i % 7}"},
            "annotations": {
                "summary": "p99 latency above 500 ms",
                "description": f"checkout p99 latency is 734 ms on instance {i}",
                "runbook_url": "https://runbooks.example.com/checkout/latency",
            },
            "startsAt": "2025-04-14T15:24:15Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
            "fingerprint": f"{MARK}-{i}",
        }
        for i in range(alerts)
    ]
    payload = {
        "version": "4",
        "groupKey": '{}:{alertname="BenchHighLatency"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "dd0c",
        "groupLabels": {"alertname": "BenchHighLatency"},
        "commonLabels": common,
        "commonAnnotations": {"summary": "p99 latency above 500 ms"},
        "externalURL": "http://alertmanager:9093",
        "alerts": items,
    }
    return json.dumps(payload, separators=(",", ":")).split(MARK)


# --- the server under test ---------------------------------------------------------------


@dataclass
class Target:
    base: str
    tenant: str
    secret: str
    integration: str | None = None
    api_key: str | None = None
    pid: int | None = None  # only when the bench started the server
    db_path: Path | None = None
    #: production mode: every ingest process's base URL (``base`` is the first), the
    #: pids of all role processes, and the owner DSN to count stored alerts with
    bases: list[str] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    owner_dsn: str | None = None
    api_base: str | None = None  # the ``api`` process, where it is not the ingest one
    #: production mode: role -> pids, PostgreSQL's postmaster and Redis included, for
    #: the CPU each spends per request (what a process more of one role would need)
    roles: dict[str, list[int]] = field(default_factory=dict)

    @property
    def webhook_url(self) -> str:
        return self.webhook_url_at(self.base)

    def webhook_url_at(self, base: str) -> str:
        path = f"/v1/wh/{self.tenant}/alertmanager"
        return base + path + (f"/{self.integration}" if self.integration else "")

    @property
    def all_pids(self) -> list[int]:
        """Every server process: ``serve`` counts with its background child."""
        if self.pids:
            return self.pids
        return [] if self.pid is None else [self.pid, *child_pids(self.pid)]


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(
    base: str,
    proc: subprocess.Popen[bytes] | None = None,
    log_tail: Callable[[], str] = lambda: "",
) -> None:
    """Until ``base`` answers /healthz (30 s at most), or ``proc`` exits."""
    deadline = time.monotonic() + 30
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"server exited at start:\n{log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{base} not healthy after 30 s:\n{log_tail()}")
        time.sleep(0.1)


def bench_tenant(
    cli_json: Callable[..., dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A tenant and an Alertmanager integration, made with the CLI (``--json``)."""
    secret = secrets.token_urlsafe(24)
    tenant = cli_json("tenant", "create", "bench")
    integration = cli_json(
        "integration", "create", "--tenant", tenant["tenant_id"],
        "--provider", "alertmanager", "--secret", secret,
    )  # fmt: skip
    return tenant, integration, secret


@dataclass
class OwnServer:
    """A ``dd0c-alert serve`` subprocess on a temporary data directory."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dd0c-bench-")))
    proc: subprocess.Popen[bytes] | None = None
    #: Where to copy the server's log when it stops (the data directory is removed).
    keep_log: Path | None = None

    def _cli(self) -> str:
        cli = Path(sys.executable).with_name("dd0c-alert")
        if not cli.exists():
            raise SystemExit(f"{cli} not found: run the bench with the project's .venv python")
        return str(cli)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DATABASE_URL", None)
        env.pop("DD0C_DATABASE_URL", None)
        env["DD0C_DATA_DIR"] = str(self.workdir / "data")
        return env

    def _json(self, *args: str) -> dict[str, Any]:
        out = subprocess.run(
            [self._cli(), *args, "--json"], env=self._env(), check=True, capture_output=True
        )
        result: dict[str, Any] = json.loads(out.stdout)
        return result

    def start(self) -> Target:
        tenant, integration, secret = bench_tenant(self._json)
        port = free_port()
        logfile = (self.workdir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [self._cli(), "serve", "--port", str(port)],
            env=self._env(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, self.proc, self.log_tail)
        log(f"server pid {self.proc.pid} on {base}, data in {self.workdir}")
        return Target(
            base=base,
            tenant=tenant["tenant_id"],
            secret=secret,
            integration=integration["integration_id"],
            api_key=tenant["api_key"],
            pid=self.proc.pid,
            db_path=self.workdir / "data" / "dd0c.db",
        )

    def log_tail(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.keep_log is not None and (self.workdir / "server.log").exists():
            shutil.copyfile(self.workdir / "server.log", self.keep_log)
            log(f"server log kept in {self.keep_log}")
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self.workdir.exists():
            log(f"could not remove {self.workdir}")


@dataclass
class ProductionCluster:
    """PostgreSQL + Redis + role processes, all on this machine (tests/servers.py)."""

    ingest: int = 1
    correlate: int = 2
    notify: int = 0
    cron: int = 0
    #: A folder to copy each role's log to when the cluster stops.
    keep_logs: Path | None = None
    #: Settings for every role process (the bench's own ``DD0C_*`` are not passed on).
    extra_env: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="dd0c-bench-")))
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    role_names: list[str] = field(default_factory=list)  # procs' roles, in order
    pg: Any = None
    redis: Any = None

    def start(self) -> Target:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from cryptography.fernet import Fernet  # noqa: PLC0415

        from servers import APP, OWNER, PostgresServer, RedisServer  # noqa: PLC0415

        self.pg = PostgresServer(self.workdir / "pg", durable=True)
        self.pg.start()
        self.pg.create_database("dd0c")
        self.redis = RedisServer(self.workdir / "redis")
        self.redis.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DD0C_")}
        env.update(
            DATABASE_URL=self.pg.dsn("dd0c", APP),
            DD0C_MIGRATION_DATABASE_URL=self.pg.dsn("dd0c", OWNER),
            REDIS_URL=self.redis.url,
            DD0C_SECRET_KEY=Fernet.generate_key().decode(),
            DD0C_JWT_SECRET=secrets.token_urlsafe(48),
            DD0C_DATA_DIR=str(self.workdir / "data"),
        )
        env.update(self.extra_env)
        cli = str(Path(sys.executable).with_name("dd0c-alert"))
        subprocess.run([cli, "migrate"], env=env, check=True, capture_output=True)
        env.pop("DD0C_MIGRATION_DATABASE_URL")

        def as_json(*args: str) -> dict[str, Any]:
            out = subprocess.run([cli, *args, "--json"], env=env, check=True, capture_output=True)
            result: dict[str, Any] = json.loads(out.stdout)
            return result

        tenant, integration, secret = bench_tenant(as_json)
        bases = []
        for n in range(self.ingest):
            port = free_port()
            bases.append(f"http://127.0.0.1:{port}")
            self._spawn(cli, env, f"ingest-{n}", "ingest", "--port", str(port))
        for n in range(self.correlate):
            self._spawn(cli, env, f"correlate-{n}", "correlate")
        for n in range(self.notify):
            self._spawn(cli, env, f"notify-{n}", "notify")
        for n in range(self.cron):
            self._spawn(cli, env, f"cron-{n}", "cron")
        self.env = env
        api_port = free_port()
        self._spawn(cli, env, "api", "api", "--port", str(api_port))
        api_base = f"http://127.0.0.1:{api_port}"
        for base in [*bases, api_base]:
            wait_healthy(base)
        log(f"production: {self.ingest} ingest, {self.correlate} correlate, in {self.workdir}")
        return Target(
            base=bases[0],
            tenant=tenant["tenant_id"],
            secret=secret,
            integration=integration["integration_id"],
            api_key=tenant["api_key"],
            bases=bases,
            pids=[proc.pid for proc in self.procs[:-1]],  # the api process idles
            owner_dsn=self.pg.dsn("dd0c", OWNER),
            api_base=api_base,
            roles=self._roles(),
        )

    def _roles(self) -> dict[str, list[int]]:
        roles: dict[str, list[int]] = {
            "postgres": [self.pg.proc.pid],
            "redis": [self.redis.proc.pid],
        }
        for name, proc in zip(self.role_names[:-1], self.procs[:-1], strict=True):
            roles.setdefault(name, []).append(proc.pid)
        return roles

    def _spawn(self, cli: str, env: dict[str, str], name: str, *args: str) -> None:
        out = (self.workdir / f"{name}.log").open("wb")
        self.role_names.append(args[0])
        self.procs.append(
            subprocess.Popen([cli, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.keep_logs is not None:
            self.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in self.workdir.glob("*.log"):
                shutil.copyfile(path, self.keep_logs / path.name)
            log(f"role logs kept in {self.keep_logs}")
        if self.redis is not None:
            self.redis.stop()
        if self.pg is not None:
            self.pg.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def proc_status_mb(pid: int | None, key: str) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of the process (all threads)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def role_cpu_seconds(target: Target) -> dict[str, float]:
    """CPU seconds so far by role; PostgreSQL's are its postmaster's and its backends'
    (the roles' pooled connections live through a load)."""
    found: dict[str, float] = {}
    for role, pids in target.roles.items():
        backends = [c for pid in pids for c in child_pids(pid)] if role == "postgres" else []
        found[role] = sum(cpu_seconds(pid) or 0.0 for pid in [*pids, *backends])
    return found


def client_cpu_seconds() -> float:
    """CPU seconds of the load tools run and waited for so far (``wrk``); the Python
    client runs in this process and is not counted."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds this machine has spent busy (all cores), from ``/proc/stat``."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def total(values: list[float | None]) -> float | None:
    """A figure summed over the role processes (None if any is unknown)."""
    known = [v for v in values if v is not None]
    return round(sum(known), 2) if values and len(known) == len(values) else None


def stored_alerts(target: Target) -> int | None:
    """Alert rows of the bench tenant, read straight from the database (own server only)."""
    if target.owner_dsn is not None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(target.owner_dsn) as conn:
            found = conn.execute(
                "SELECT count(*) FROM alerts WHERE tenant_id = %s", (target.tenant,)
            ).fetchone()
        return int(found[0]) if found else 0
    if target.db_path is None:
        return None
    conn = sqlite3.connect(f"file:{target.db_path}?mode=ro", uri=True, timeout=30)
    try:
        row = conn.execute(
            "SELECT count(*) FROM alerts WHERE tenant_id = ?", (target.tenant,)
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


_WAITING = re.compile(r"\((\d+) waiting")


def queue_depth(client: httpx.Client, base: str) -> int | None:
    response = client.get(f"{base}/readyz", timeout=10)
    match = _WAITING.search(response.json().get("checks", {}).get("queue", ""))
    return int(match.group(1)) if match else None


@dataclass
class Drain:
    seconds: float  # until the queue was empty, or until the timeout
    drained: bool
    left: int | None  # events still queued when it gave up


def wait_drained(base: str, timeout: float) -> Drain:
    """Poll /readyz until the queue reports 0 waiting events, or ``timeout`` passes."""
    start = time.monotonic()
    pause = 0.02  # grows to 1 s: /readyz counts the queue, and polling must not load it
    depth = None
    with httpx.Client() as client:
        while True:
            depth = queue_depth(client, base)
            elapsed = time.monotonic() - start
            if depth == 0:
                return Drain(elapsed, True, 0)
            if elapsed >= timeout:
                return Drain(elapsed, False, depth)
            time.sleep(pause)
            pause = min(pause * 1.5, 1.0)


def send_one(target: Target) -> None:
    """One delivery before the load, so a wrong secret or URL fails loudly, not as 401s."""
    body = "probe".join(body_parts(1))
    response = httpx.post(
        target.webhook_url,
        content=body,
        headers={"Authorization": f"Bearer {target.secret}", "Content-Type": "application/json"},
        timeout=10,
    )
    if response.status_code != 202:
        raise SystemExit(f"probe webhook got {response.status_code}: {response.text}")


def api_check(target: Target) -> str:
    if not target.api_key:
        return "skipped (no --api-key)"
    response = httpx.get(
        f"{target.api_base or target.base}/v1/alerts",
        params={"limit": 1},
        headers={"Authorization": f"Bearer {target.api_key}"},
        timeout=10,
    )
    if response.status_code != 200:
        return f"failed: HTTP {response.status_code}"
    items = response.json().get("items", [])
    if not items:
        return "failed: no alerts"
    if items[0].get("source") != "alertmanager":
        return f"failed: newest alert from {items[0].get('source')!r}"
    return "ok"


# --- load: wrk ---------------------------------------------------------------------------


@dataclass
class LoadResult:
    duration_s: float
    requests: int
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


WRK_SCRIPT = """
local parts = {%(parts)s}
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer %(secret)s",
  ["User-Agent"] = "%(agent)s",
}
local threads = 0
local counter = 0
local prefix = ""

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = "%(nonce)s-" .. tostring(tid) .. "-"
end

function request()
  counter = counter + 1
  return wrk.format("POST", nil, headers, table.concat(parts, prefix .. counter))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"duration_us":%%.0f,"requests":%%.0f,"connect":%%.0f,"read":%%.0f,'
    .. '"write":%%.0f,"status":%%.0f,"timeout":%%.0f,"p50_us":%%.0f,"p95_us":%%.0f,'
    .. '"p99_us":%%.0f,"max_us":%%.0f}\\n',
    summary.duration, summary.requests, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def lua_string(text: str) -> str:
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def run_wrk_all(
    target: Target, alerts: int, connections: int, duration: int, threads: int
) -> LoadResult:
    """One wrk per ingest process, at the same time, the connections split evenly.
    Requests add up; each latency percentile is the worst of the processes'."""
    bases = target.bases or [target.base]
    if len(bases) == 1:
        return run_wrk(target, target.webhook_url, alerts, connections, duration, threads)
    share = max(1, connections // len(bases))
    with ThreadPoolExecutor(len(bases)) as pool:
        results = list(
            pool.map(
                lambda base: run_wrk(
                    target,
                    target.webhook_url_at(base),
                    alerts,
                    share,
                    duration,
                    max(1, threads // len(bases)),
                ),
                bases,
            )
        )
    return LoadResult(
        duration_s=max(r.duration_s for r in results),
        requests=sum(r.requests for r in results),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
        p50_ms=max(r.p50_ms for r in results),
        p95_ms=max(r.p95_ms for r in results),
        p99_ms=max(r.p99_ms for r in results),
        max_ms=max(r.max_ms for r in results),
    )


def run_wrk(
    target: Target,
    url: str,
    alerts: int,
    connections: int,
    duration: int,
    threads: int,
    parts: list[str] | None = None,
) -> LoadResult:
    """``parts``: the body split on MARK (default: an Alertmanager webhook of
    ``alerts`` alerts, as Alertmanager sends to a receiver)."""
    script = WRK_SCRIPT % {
        "parts": ", ".join(lua_string(part) for part in parts or body_parts(alerts)),
        "secret": target.secret,
        "agent": USER_AGENT,
        "nonce": secrets.token_hex(4),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        command = [
            "wrk",
            f"-t{min(threads, connections)}",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            handle.name,
            url,
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=False)
    finally:
        os.unlink(handle.name)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    return LoadResult(
        duration_s=raw["duration_us"] / 1e6,
        requests=int(raw["requests"]),
        non_2xx=int(raw["status"]),
        socket_errors=int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]),
        p50_ms=raw["p50_us"] / 1000,
        p95_ms=raw["p95_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )


# --- load: pure Python (no wrk) ------------------------------------------------------------


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    non_2xx: int = 0
    socket_errors: int = 0


async def _connection(
    host: str, port: int, head: bytes, parts: list[str], prefix: str, deadline: float, tally: _Tally
) -> None:
    """One keep-alive HTTP/1.1 connection sending requests back to back until deadline."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    counter = 0
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            counter += 1
            body = f"{prefix}{counter}".join(parts).encode()
            started = time.perf_counter()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            response_head = await reader.readuntil(b"\r\n\r\n")
            status = int(response_head[9:12])
            match = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", response_head)
            if match is None:
                raise ConnectionError("response without Content-Length")
            await reader.readexactly(int(match.group(1)))
            tally.latencies.append(time.perf_counter() - started)
            if not 200 <= status < 300:
                tally.non_2xx += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            tally.socket_errors += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _python_load(target: Target, alerts: int, connections: int, duration: int) -> LoadResult:
    url = urlsplit(target.webhook_url)
    if url.scheme != "http":
        raise SystemExit("--tool python speaks plain http only")
    host, port = url.hostname or "127.0.0.1", url.port or 80
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {target.secret}\r\n"
        f"User-Agent: {USER_AGENT}\r\nContent-Length: "
    ).encode()
    parts = body_parts(alerts)
    nonce = secrets.token_hex(4)
    tally = _Tally()
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(
            _connection(host, port, head, parts, f"{nonce}-{i}-", deadline, tally)
            for i in range(connections)
        )
    )
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies)

    def pct(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return LoadResult(
        duration_s=elapsed,
        requests=len(latencies),
        non_2xx=tally.non_2xx,
        socket_errors=tally.socket_errors,
        p50_ms=pct(50),
        p95_ms=pct(95),
        p99_ms=pct(99),
        max_ms=latencies[-1] * 1000 if latencies else 0.0,
    )


def run_python(target: Target, alerts: int, connections: int, duration: int) -> LoadResult:
    try:
        import uvloop  # noqa: PLC0415

        return uvloop.run(_python_load(target, alerts, connections, duration))
    except ImportError:
        return asyncio.run(_python_load(target, alerts, connections, duration))


# --- one scenario ------------------------------------------------------------------------


def run_scenario(name: str, target: Target, args: argparse.Namespace) -> dict[str, Any]:
    alerts = SCENARIOS[name]
    send_one(target)
    if not wait_drained(target.base, args.drain_timeout).drained:
        raise SystemExit("queue did not drain before the load")
    before = stored_alerts(target)
    cpu_before = total([cpu_seconds(pid) for pid in target.all_pids])
    roles_before, busy_before = role_cpu_seconds(target), machine_busy_seconds()
    client_before = client_cpu_seconds()
    log(f"{name}: {args.tool}, {args.connections} connections, {args.duration} s")
    if args.tool == "wrk":
        load = run_wrk_all(target, alerts, args.connections, args.duration, args.threads)
    else:
        load = run_python(target, alerts, args.connections, args.duration)
    cpu_after_load = total([cpu_seconds(pid) for pid in target.all_pids])
    roles_after, busy_after = role_cpu_seconds(target), machine_busy_seconds()
    client = client_cpu_seconds() - client_before
    rss_loaded = total([proc_status_mb(pid, "VmRSS") for pid in target.all_pids])
    drain = wait_drained(target.base, args.drain_timeout)
    after = stored_alerts(target)
    accepted_alerts = (load.requests - load.non_2xx) * alerts
    stored = None if before is None or after is None else after - before
    if drain.drained:
        processed: int | None = stored if stored is not None else accepted_alerts
    else:
        log(f"{name}: queue not drained after {drain.seconds:.0f} s, {drain.left} events left")
        processed = stored  # what the worker managed by the timeout, if we can see it
    cpu_load = (
        None
        if cpu_before is None or cpu_after_load is None
        else round((cpu_after_load - cpu_before) / load.duration_s, 2)
    )
    return {
        "scenario": name,
        "tool": args.tool,
        "connections": args.connections,
        "duration_s": round(load.duration_s, 2),
        "alerts_per_request": alerts,
        "requests": load.requests,
        "requests_per_s": round(load.requests / load.duration_s, 1),
        "alerts_per_s": round(load.requests * alerts / load.duration_s, 1),
        "latency_ms": {
            "p50": round(load.p50_ms, 2),
            "p95": round(load.p95_ms, 2),
            "p99": round(load.p99_ms, 2),
            "max": round(load.max_ms, 2),
        },
        "errors": {"non_2xx": load.non_2xx, "socket": load.socket_errors},
        "drain_s": round(drain.seconds, 2) if drain.drained else None,
        "drain_timed_out": None
        if drain.drained
        else {
            "after_s": round(drain.seconds, 1),
            "events_left": drain.left,
        },
        "alerts_stored": stored,
        "processed_alerts_per_s": (
            None if processed is None else round(processed / (load.duration_s + drain.seconds), 1)
        ),
        "server_cpu_cores_during_load": cpu_load,
        "client_cpu_cores_during_load": round(client / load.duration_s, 2)
        if args.tool == "wrk"
        else None,
        "machine_cpu_cores_busy_during_load": round(
            (busy_after - busy_before) / load.duration_s, 2
        ),
        "cpu_us_per_request_by_role": {
            role: round(1e6 * (roles_after[role] - roles_before[role]) / max(1, load.requests), 1)
            for role in roles_before
        }
        or None,
        "server_rss_mb": rss_loaded,
        "server_peak_rss_mb": total([proc_status_mb(pid, "VmHWM") for pid in target.all_pids]),
        "api_check": api_check(target),
        "mode": args.mode,
        "processes": {"ingest": len(target.bases), "correlate": args.correlate}
        if target.bases
        else None,
        "machine": {"nproc": os.cpu_count()},
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="Base URL of a running server (default: start one).")
    parser.add_argument("--tenant", help="Tenant id (with --url).")
    parser.add_argument("--secret", help="Alertmanager integration secret (with --url).")
    parser.add_argument("--integration", help="Integration id (optional, with --url).")
    parser.add_argument("--api-key", help="Tenant API key for the final check (with --url).")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=15, help="Seconds of load.")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads.")
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument(
        "--tool", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python"
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--mode", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--ingest", type=int, default=1, help="ingest processes (production)")
    parser.add_argument("--correlate", type=int, default=2, help="correlate processes (production)")
    args = parser.parse_args()
    if args.url and not (args.tenant and args.secret):
        parser.error("--url needs --tenant and --secret")
    if args.tool == "wrk" and not shutil.which("wrk"):
        parser.error("wrk not found on PATH; use --tool python")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so the finally below stops the server


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    if args.url:
        target = Target(
            base=args.url.rstrip("/"),
            tenant=args.tenant,
            secret=args.secret,
            integration=args.integration,
            api_key=args.api_key,
        )
        for name in names:
            print(json.dumps(run_scenario(name, target, args)), flush=True)
        return
    for name in names:
        # A fresh server and database per scenario: one scenario's rows must not slow
        # the next, and the peak RSS is then the scenario's own.
        server: OwnServer | ProductionCluster = (
            ProductionCluster(args.ingest, args.correlate)
            if args.mode == "production"
            else OwnServer()
        )
        try:
            print(json.dumps(run_scenario(name, server.start(), args)), flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
