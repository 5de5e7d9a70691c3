"""Soak: a steady webhook load for minutes, watching whether the worker keeps up.

Starts its own ``dd0c-alert serve`` (embedded) and posts Alertmanager webhooks at a
fixed rate (``--rate`` requests/s of ``--alerts`` alerts each, every alert new) from a
paced asyncio client; every ``--every`` seconds it samples the queue lag (the age of
the oldest unprocessed event, from ``/readyz``), the depth, and the RSS of serve and of
its background process. Prints one JSON line per sample and a summary line; progress on
stderr. Not a test. The issue's bar: lag under 5 s throughout, RSS flat.

    .venv/bin/python bench/soak.py [--rate 20 --alerts 100] [--minutes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import (  # noqa: E402
    USER_AGENT,
    OwnServer,
    Target,
    body_parts,
    child_pids,
    log,
    proc_status_mb,
    wait_drained,
)

_QUEUE = re.compile(r"\((\d+) waiting, oldest ([\d.]+) s\)")


async def paced_load(
    target: Target, rate: float, alerts: int, seconds: float, sent: list[int]
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
        while (due := start + index * interval / connections + n * interval) < start + seconds:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            n += 1
            body = f"{nonce}-{index}-{n}".join(parts).encode()
            writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
            response = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", response)
            await reader.readexactly(int(length.group(1)) if length else 0)
            sent[0 if response[9:10] == b"2" else 1] += 1
        writer.close()

    await asyncio.gather(*(connection(i) for i in range(connections)))


def sample(
    client: httpx.Client, target: Target, started: float, sent: list[int]
) -> dict[str, object]:
    checks = client.get(f"{target.base}/readyz", timeout=10).json()["checks"]
    match = _QUEUE.search(checks.get("queue", ""))
    pids = [target.pid, *child_pids(target.pid)] if target.pid else []
    return {
        "t_s": round(time.monotonic() - started),
        "accepted": sent[0],
        "failed": sent[1],
        "queue_waiting": int(match.group(1)) if match else None,
        "lag_s": float(match.group(2)) if match else None,
        "rss_mb": [proc_status_mb(pid, "VmRSS") for pid in pids],
    }


async def main(args: argparse.Namespace) -> None:
    server = OwnServer()
    target = server.start()
    sent = [0, 0]
    samples: list[dict[str, object]] = []
    try:
        load = asyncio.create_task(
            paced_load(target, args.rate, args.alerts, args.minutes * 60, sent)
        )
        started = time.monotonic()
        with httpx.Client() as client:
            while not load.done():
                await asyncio.sleep(args.every)
                row = await asyncio.to_thread(sample, client, target, started, sent)
                samples.append(row)
                print(json.dumps(row), flush=True)
        await load
        drain = wait_drained(target.base, 600)
        lags = [s["lag_s"] for s in samples if isinstance(s["lag_s"], float)]
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
    log("soak: starting serve")
    asyncio.run(main(parser.parse_args()))
