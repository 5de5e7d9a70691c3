"""Ingest benchmark: drive a running dd0c/alert server with Alertmanager webhooks.

Prints one JSON line per scenario on stdout; progress goes to stderr. Not a test.

    .venv/bin/python bench/ingest.py                      # own server, both scenarios
    .venv/bin/python bench/ingest.py --scenario single --tool python
    .venv/bin/python bench/ingest.py --scenario group100 --mix spread   # issue #11's mix
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
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from targets import (
    OwnServer,
    ProductionCluster,
    Target,
    client_cpu_seconds,
    cpu_seconds,
    log,
    machine_busy_seconds,
    proc_status_mb,
    role_cpu_seconds,
    stored_alerts,
    total,
)

SCENARIOS = {"single": 1, "group100": 100}
MARK = "@@SEQ@@"  # replaced per request by a unique string, so no two alerts share identity
USER_AGENT = "Alertmanager/0.27.0"


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


# --- the server's queue and API ---------------------------------------------------------


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
    # Grows to 0.25 s: /readyz counts the queue, and polling must not load it; a longer
    # pause would overstate a drain of a few seconds, and so the end-to-end rate.
    pause = 0.02
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
            pause = min(pause * 1.5, 0.25)


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


#: wrk's Lua script: ``%(request)s`` is one of the two ways below to make bodies.
WRK_SCRIPT = """
local headers = {
  ["Content-Type"] = "application/json",
  ["Authorization"] = "Bearer %(secret)s",
  ["User-Agent"] = "%(agent)s",
}
%(request)s
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

#: Every alert fresh: the body's parts joined by a string unique to the request.
FRESH_REQUEST = """
local parts = {%(parts)s}
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
"""

#: The spread mix: each alert one of SERVICES x NAMES, drawn at random; ``item`` is
#: one alert with @S@ (service), @N@ (alert name) and @SEV@ (severity) to fill in.
SPREAD_REQUEST = """
local head, item, tail = %(head)s, %(item)s, %(tail)s
local severities = {"critical", "warning", "info"}
local chosen = {}

function init(args)
  math.randomseed(%(seed)d)
end

function request()
  for i = 1, %(alerts)d do
    local s, n = math.random(0, %(services)d - 1), math.random(0, %(names)d - 1)
    chosen[i] = item:gsub("@S@", s):gsub("@N@", n):gsub("@SEV@", severities[n %% 3 + 1])
  end
  return wrk.format("POST", nil, headers, head .. table.concat(chosen, ",") .. tail)
end
"""
#: The mix issue #11 names: 200 services x 50 alert names, random. Past the first
#: 10,000 draws most alerts repeat one that fires already, as in a real storm.
SERVICES, NAMES = 200, 50


@dataclass(frozen=True)
class Spread:
    """A body as ``head``, alerts from ``item`` joined by commas, ``tail``."""

    head: str
    item: str
    tail: str


def spread_webhook() -> Spread:
    """The spread mix as Alertmanager v4 notifications to dd0c."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "Alert@N@", "service": "svc-@S@", "severity": "@SEV@"},
        "annotations": {"summary": "Alert@N@ on svc-@S@"},
        "startsAt": "2025-04-14T15:24:15Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": "s@S@-a@N@",
    }
    document = json.dumps(notification([MARK]), separators=(",", ":"))
    head, tail = document.split(f'"{MARK}"')
    return Spread(head, json.dumps(alert, separators=(",", ":")), tail)


def notification(alerts: list[Any]) -> dict[str, Any]:
    """An Alertmanager v4 notification of ``alerts`` with no common labels (a group
    of mixed services and alert names)."""
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "dd0c",
        "groupLabels": {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": alerts,
    }


def lua_string(text: str) -> str:
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def run_wrk_all(
    target: Target,
    alerts: int,
    connections: int,
    duration: int,
    threads: int,
    spread: Spread | None = None,
) -> LoadResult:
    """One wrk per ingest process, at the same time, the connections split evenly.
    Requests add up; each latency percentile is the worst of the processes'."""
    bases = target.bases or [target.base]
    if len(bases) == 1:
        url = target.webhook_url
        return run_wrk(target, url, alerts, connections, duration, threads, spread=spread)
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
                    spread=spread,
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
    spread: Spread | None = None,
) -> LoadResult:
    """``parts``: the body split on MARK (default: an Alertmanager webhook of
    ``alerts`` alerts, as Alertmanager sends to a receiver), every alert fresh; or
    ``spread``: ``alerts`` alerts a request drawn from the spread mix."""
    if spread is None:
        joined = ", ".join(lua_string(part) for part in parts or body_parts(alerts))
        request = FRESH_REQUEST % {"parts": joined, "nonce": secrets.token_hex(4)}
    else:
        request = SPREAD_REQUEST % {
            "head": lua_string(spread.head),
            "item": lua_string(spread.item),
            "tail": lua_string(spread.tail),
            "alerts": alerts,
            "seed": secrets.randbelow(2**31),
            "services": SERVICES,
            "names": NAMES,
        }
    script = WRK_SCRIPT % {"request": request, "secret": target.secret, "agent": USER_AGENT}
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
        spread = spread_webhook() if args.mix == "spread" else None
        load = run_wrk_all(
            target, alerts, args.connections, args.duration, args.threads, spread=spread
        )
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
        # In the spread mix repeats fold into stored alerts: count what was sent.
        fresh = stored is not None and args.mix == "fresh"
        processed: int | None = stored if fresh else accepted_alerts
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
        "mix": args.mix,
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
    parser.add_argument(
        "--mix",
        choices=["fresh", "spread"],
        default="fresh",
        help="fresh: every alert new; spread: 200 services x 50 names at random (race.py)",
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--mode", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--ingest", type=int, default=1, help="ingest processes (production)")
    parser.add_argument("--correlate", type=int, default=2, help="correlate processes (production)")
    parser.add_argument(
        "--ingest-cpus",
        type=float,
        help="cap each ingest process at this many cores (production; a cgroup, root)",
    )
    args = parser.parse_args()
    if args.url and not (args.tenant and args.secret):
        parser.error("--url needs --tenant and --secret")
    if args.mix == "spread" and args.tool != "wrk":
        parser.error("--mix spread needs wrk")
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
            ProductionCluster(args.ingest, args.correlate, ingest_cpus=args.ingest_cpus)
            if args.mode == "production"
            else OwnServer()
        )
        try:
            print(json.dumps(run_scenario(name, server.start(), args)), flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
