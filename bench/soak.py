"""Soak: a steady webhook load for minutes, watching whether the worker keeps up.

Starts its own ``dd0c-alert serve`` (embedded), or with ``--mode production`` one
process per role (ingest, correlate, cron, api) on a local PostgreSQL and Redis, and
posts Alertmanager webhooks at a fixed rate (``--rate`` requests/s of ``--alerts``
alerts each, every alert new, or with ``--mix spread`` drawn from issue #11's 200
services x 50 alert names, mostly repeats) from a paced asyncio client. Every ``--every`` seconds it
samples the queue lag (the age of the oldest unprocessed event, from ``/readyz``), the
depth, and the RSS of each server process (serve and its child; or ingest, correlate
and cron); between samples it polls the lag every 2 s and reports the highest it saw
(``max_lag_s``), so a spike between two samples is not missed. Prints one JSON line per
sample and a summary line; progress on stderr. Not a test. The issue's bar: lag under
5 s throughout, RSS flat. ``DD0C_*`` settings in the environment (a shorter
``DD0C_SUGGEST_INTERVAL_SECONDS``, say) reach the server in both modes.

    .venv/bin/python bench/soak.py [--rate 20 --alerts 100] [--minutes 10] [--keep-log F]
        [--mode production] [--mix spread]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import (  # noqa: E402
    NAMES,
    SERVICES,
    USER_AGENT,
    body_parts,
    spread_webhook,
    wait_drained,
)
from targets import OwnServer, ProductionCluster, Target, log, proc_status_mb  # noqa: E402

_QUEUE = re.compile(r"\((\d+) waiting, oldest ([\d.]+) s\)")


def spread_bodies(alerts: int, seed: int) -> Iterator[str]:
    """Notifications of ``alerts`` alerts drawn from the spread mix (``ingest.py``'s
    ``--mix spread``), as its Lua request builds them."""
    spread, draw = spread_webhook(), random.Random(seed)
    severities = ("critical", "warning", "info")
    while True:
        chosen = []
        for _ in range(alerts):
            service, name = draw.randrange(SERVICES), draw.randrange(NAMES)
            item = spread.item.replace("@S@", str(service)).replace("@N@", str(name))
            chosen.append(item.replace("@SEV@", severities[name % 3]))
        yield spread.head + ",".join(chosen) + spread.tail


async def paced_load(
    target: Target, rate: float, alerts: int, seconds: float, sent: list[int], mix: str
) -> None:
    """``rate`` requests a second on 8 keep-alive connections, each on its own
    schedule, so a slow answer delays that connection's next request but not the pace
    of the others. ``sent`` holds [accepted, failed]."""
    url = urlsplit(target.webhook_url)
    head = (
        f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {target.secret}\r\nUser-Agent: {USER_AGENT}\r\nContent-Length: "
    ).encode()
    parts = body_parts(alerts)
    nonce = secrets.token_hex(4)
    connections = 8
    interval = connections / rate
    start = time.perf_counter()

    async def connection(index: int) -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        n = 0
        spread = spread_bodies(alerts, seed=index)
        while (due := start + index * interval / connections + n * interval) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            n += 1
            if mix == "spread":
                body = next(spread).encode()
            else:
                body = f"{nonce}-{index}-{n}".join(parts).encode()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            response = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", response)
            await reader.readexactly(int(length.group(1)) if length else 0)
            sent[0 if response[9:10] == b"2" else 1] += 1
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(connections)))


def queue_state(client: httpx.Client, target: Target) -> tuple[int | None, float | None]:
    """(events waiting, age of the oldest in seconds), as ``/readyz`` reports them."""
    checks = client.get(f"{target.base}/readyz", timeout=10).json()["checks"]
    match = _QUEUE.search(checks.get("queue", ""))
    return (int(match.group(1)), float(match.group(2))) if match else (None, None)


async def watch_lag(target: Target, highest: list[float], stop: asyncio.Event) -> None:
    """Keep ``highest[0]`` at the highest lag seen since the caller last reset it."""
    with httpx.Client() as client:
        while not stop.is_set():
            _, lag = await asyncio.to_thread(queue_state, client, target)
            highest[0] = max(highest[0], lag or 0.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2.0)


def sample(
    client: httpx.Client, target: Target, started: float, sent: list[int], highest: list[float]
) -> dict[str, object]:
    waiting, lag = queue_state(client, target)
    pids = target.all_pids
    row: dict[str, object] = {
        "t_s": round(time.monotonic() - started),
        "accepted": sent[0],
        "failed": sent[1],
        "queue_waiting": waiting,
        "lag_s": lag,
        "max_lag_s": max(highest[0], lag or 0.0),
        "rss_mb": [proc_status_mb(pid, "VmRSS") for pid in pids],
    }
    highest[0] = 0.0
    return row


def passed_settings() -> dict[str, str]:
    """This environment's ``DD0C_*`` settings, for the production roles (which start
    from a clean environment of their own)."""
    return {key: value for key, value in os.environ.items() if key.startswith("DD0C_")}


async def main(args: argparse.Namespace) -> None:
    server: OwnServer | ProductionCluster
    if args.mode == "production":
        server = ProductionCluster(
            correlate=1, cron=1, extra_env=passed_settings(), keep_logs=args.keep_log
        )
    else:
        server = OwnServer(keep_log=args.keep_log)
    target = server.start()
    sent = [0, 0]
    samples: list[dict[str, object]] = []
    highest = [0.0]
    stop = asyncio.Event()
    try:
        load = asyncio.create_task(
            paced_load(target, args.rate, args.alerts, args.minutes * 60, sent, args.mix)
        )
        watcher = asyncio.create_task(watch_lag(target, highest, stop))
        started = time.monotonic()
        with httpx.Client() as client:
            while not load.done():
                await asyncio.sleep(args.every)
                row = await asyncio.to_thread(sample, client, target, started, sent, highest)
                samples.append(row)
                print(json.dumps(row), flush=True)
        await load
        stop.set()
        await watcher
        drain = wait_drained(target.base, 600)
        lags = [s["max_lag_s"] for s in samples if isinstance(s["max_lag_s"], float)]
        first, last = samples[min(2, len(samples) - 1)]["rss_mb"], samples[-1]["rss_mb"]
        print(
            json.dumps(
                {
                    "summary": True,
                    "offered_alerts_per_s": args.rate * args.alerts,
                    "minutes": args.minutes,
                    "accepted_requests": sent[0],
                    "failed_requests": sent[1],
                    "max_lag_s": max(lags, default=None),
                    "rss_mb_after_warmup": first,
                    "rss_mb_at_end": last,
                    "drain_after_load_s": round(drain.seconds, 1),
                }
            ),
            flush=True,
        )
    finally:
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--alerts", type=int, default=100, help="alerts per request")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument(
        "--keep-log",
        type=Path,
        help="copy the server's log to this file at the end (production: to this folder)",
    )
    parser.add_argument("--mode", choices=["embedded", "production"], default="embedded")
    parser.add_argument(
        "--mix",
        choices=["fresh", "spread"],
        default="fresh",
        help="every alert new (fresh), or issue #11's 200 services x 50 names (spread)",
    )
    arguments = parser.parse_args()
    log(f"soak: starting the server ({arguments.mode})")
    asyncio.run(main(arguments))
