"""Notification latency: from a webhook's 202 to the Slack call that tells a person.

A steady stream of single-alert Alertmanager webhooks (default 200 alerts/s for 60 s)
goes to a server this bench starts, in embedded mode (``dd0c-alert serve``) or
production mode (PostgreSQL + Redis, ``ingest``, ``correlate``, ``notify`` and ``api``
processes). New services appear at a steady rate, so incidents keep opening while
older ones grow; ten routes spread them over ten Slack channels of the local Slack Web
API stand-in (``tests/stand_ins/slack_api.py``), which answers like Slack. The
notifier's own pacing (about one call per second per channel) is left on.

Printed (one JSON line per mode): for each new incident, the time from the 202 of its
first alert to its ``chat.postMessage`` (the page); for each joining alert, the time
from its 202 to the first ``chat.update`` of its incident after it. The second is a
lower bound for "the message shows this alert" (an update rendered just before the
alert was stored counts too) and includes the coalescing interval by design.

    .venv/bin/python bench/notify.py [--mode embedded|production] [--rate 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from targets import OwnServer, ProductionCluster, Target, log  # noqa: E402

from stand_ins.slack_api import SlackStandIn  # noqa: E402

TOKEN = "xoxb-bench-token"
CHANNELS = 10
NEW_SERVICES_PER_SECOND = 2
ACTIVE_SERVICES = 20


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"n": len(ordered), "p50": at(0.50), "p95": at(0.95), "p99": at(0.99)}


def _configure(target: Target, settings_env: dict[str, str]) -> None:
    """Slack settings and one route per channel, written straight to the database."""
    os.environ.update(settings_env)
    from dd0c_alert.app import build_runtime  # noqa: PLC0415
    from dd0c_alert.config import Settings  # noqa: PLC0415

    runtime = build_runtime(Settings(), roles=frozenset())
    runtime.notify_settings.put_slack(
        target.tenant, bot_token=TOKEN, signing_secret="bench", default_channel="#oncall"
    )
    for n in range(CHANNELS):
        runtime.notify_settings.save_route(
            target.tenant,
            {
                "name": f"team-{n}",
                "matchers": f'{{team="t{n}"}}',
                "destinations": [{"type": "slack", "channel": f"#team-{n}"}],
            },
        )
    runtime.stop()


def _body(service: str, alert: int) -> bytes:
    team = f"t{hash(service) % CHANNELS}"
    labels = {
        "alertname": f"Check{alert % 5}",
        "service": service,
        "team": team,
        "severity": "critical",
        "instance": f"{service}-{alert}",
    }
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return json.dumps(
        {
            "version": "4",
            "status": "firing",
            "receiver": "dd0c",
            "groupLabels": {},
            "commonLabels": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": labels,
                    "annotations": {"summary": f"{service} check {alert % 5} failing"},
                    "startsAt": now,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": f"{service}-{alert}",
                }
            ],
        }
    ).encode()


async def _drive(target: Target, rate: int, seconds: int) -> list[tuple[str, str, float]]:
    """(service, fingerprint, accepted at) for every alert sent, at ``rate`` per second."""
    sent: list[tuple[str, str, float]] = []
    services: list[str] = []
    headers = {"Authorization": f"Bearer {target.secret}", "Content-Type": "application/json"}
    rnd = random.Random(7)
    start = time.monotonic()
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:
        pending: set[asyncio.Task[None]] = set()

        async def one(service: str, n: int) -> None:
            response = await client.post(
                target.webhook_url, content=_body(service, n), headers=headers
            )
            if response.status_code == 202:
                sent.append((service, f"{service}-{n}", time.time()))

        for n in range(rate * seconds):
            due = start + n / rate
            if (delay := due - time.monotonic()) > 0:
                await asyncio.sleep(delay)
            while len(services) < NEW_SERVICES_PER_SECOND * (1 + int(time.monotonic() - start)):
                services.append(f"svc-{len(services):04d}")
            service = rnd.choice(services[-ACTIVE_SERVICES:])
            task = asyncio.create_task(one(service, n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    return sent


def _latencies(
    target: Target, slack: SlackStandIn, sent: list[tuple[str, str, float]]
) -> dict[str, Any]:
    """Match Slack calls to incidents (message metadata, then ``ts``) and incidents to
    alerts (through the API), then measure."""
    api = target.api_base or target.base
    headers = {"Authorization": f"Bearer {target.api_key}"}
    accepted = {fingerprint: at for _, fingerprint, at in sent}
    posts: dict[str, tuple[float, str]] = {}
    for call in slack.calls_of("chat.postMessage"):
        meta = call.args.get("metadata") or {}
        incident = (meta.get("event_payload") or {}).get("incident_id")
        if incident and call.fault == "ok" and incident not in posts:
            posts[incident] = (call.at, str(call.args["channel"]))
    messages: dict[str, str] = {}
    for n in range(CHANNELS):
        for message in slack.messages(f"#team-{n}"):
            incident = message.get("metadata", {}).get("event_payload", {}).get("incident_id")
            if incident:
                messages[message["ts"]] = incident
    updates: dict[str, list[float]] = {}
    for call in slack.calls_of("chat.update"):
        incident = messages.get(str(call.args.get("ts")))
        if incident:
            updates.setdefault(incident, []).append(call.at)
    first_page: list[float] = []
    joining: list[float] = []
    with httpx.Client(timeout=30) as client:
        for incident, (posted_at, _) in posts.items():
            detail = client.get(f"{api}/v1/incidents/{incident}", headers=headers).json()
            times = sorted(
                accepted[a["source_ref"]] for a in detail["alerts"] if a["source_ref"] in accepted
            )
            if not times:
                continue
            first_page.append(posted_at - times[0])
            calls = sorted(updates.get(incident, []))
            for at in times[1:]:
                later = [c for c in calls if c >= at]
                if later:
                    joining.append(later[0] - at)
    return {
        "incidents_paged": len(posts),
        "first_page_ms": _percentiles(first_page),
        "joining_alert_update_ms": _percentiles(joining),
        "slack_calls": len(slack.calls),
    }


def run(mode: str, rate: int, seconds: int) -> dict[str, Any]:
    with SlackStandIn((TOKEN,)) as slack:
        env = {
            "DD0C_SLACK_API_URL": slack.base_url,
            "DD0C_RATE_LIMIT_PER_SECOND": "0",
            "DD0C_SUGGEST_INTERVAL_SECONDS": "0",
            "DD0C_LOG_LEVEL": "warning",
        }
        os.environ.update(env)
        server: OwnServer | ProductionCluster = (
            OwnServer()
            if mode == "embedded"
            else ProductionCluster(ingest=1, correlate=1, notify=1, extra_env=env)
        )
        target = server.start()
        try:
            if mode == "embedded":
                assert isinstance(server, OwnServer)
                _configure(target, {"DD0C_DATA_DIR": str(server.workdir / "data")})
            else:
                assert isinstance(server, ProductionCluster)
                _configure(target, server.env)
            log(f"{mode}: {rate} alerts/s for {seconds} s")
            sent = asyncio.run(_drive(target, rate, seconds))
            time.sleep(8)  # the last pages and updates go out
            result = {"mode": mode, "rate": rate, "seconds": seconds, "accepted": len(sent)}
            return result | _latencies(target, slack, sent)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["embedded", "production", "both"], default="both")
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    modes = ["embedded", "production"] if args.mode == "both" else [args.mode]
    for mode in modes:
        result = run(mode, args.rate, args.seconds)
        print(json.dumps(result), flush=True)
        log(f"{mode}: first page p95 {result['first_page_ms']['p95']} ms")


if __name__ == "__main__":
    main()
