"""``dd0c-alert demo``: a realistic burst against a running server, to see the path end to end.

The story: a deploy of payments-db goes out, the database slows down, and the services
above it start to alert — with the repeats and flaps a real incident sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta

import httpx

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings

_SERVICES = {
    "payments-db": ["DB connection pool saturated", "Replication lag high"],
    "payments-api": ["p99 latency over SLO", "5xx rate above 2%"],
    "checkout": ["Checkout error budget burning", "Cart timeouts"],
    "search": ["Search indexing delayed"],
}
_SEVERITIES = ["critical", "high", "warning", "warning", "info"]


def run_demo(settings: Settings, base_url: str, count: int) -> None:
    store = open_store(settings)
    tenant = store.create_tenant("demo")
    api_key = store.create_api_key(tenant.id, "demo")
    secret = "demo-" + hashlib.sha256(tenant.id.encode()).hexdigest()[:24]
    store.create_integration(tenant.id, "custom", "demo", secret)
    store.set_dependencies(
        tenant.id, {"checkout": ["payments-api"], "payments-api": ["payments-db"]}
    )
    url = f"{base_url.rstrip('/')}/v1/wh/{tenant.id}/custom"
    rng = random.Random(7)
    now = datetime.now(UTC)
    deploy = {
        "kind": "deploy",
        "service": "payments-db",
        "environment": "production",
        "version": "v42.1.0",
        "commit": "9f3c2ab",
        "author": "dana",
        "title": "Raise pool size; enable new_query_planner flag",
        "status": "success",
        "started_at": (now - timedelta(minutes=6)).isoformat(),
    }
    bodies: list[object] = [deploy]
    firing: list[dict[str, object]] = []
    for i in range(count):
        service = rng.choice(list(_SERVICES))
        alert: dict[str, object] = {
            "title": rng.choice(_SERVICES[service]),
            "status": "firing",
            "severity": rng.choice(_SEVERITIES),
            "service": service,
            "environment": "production",
            "resource": f"{service}-{rng.randint(1, 3)}",
            "labels": {"team": "payments", "region": "eu-west-1"},
            "started_at": (now - timedelta(seconds=count - i)).isoformat(),
        }
        firing.append(alert)
        bodies.append(alert)
    bodies += [{**a, "status": "resolved"} for a in rng.sample(firing, k=len(firing) // 4)]
    accepted = 0
    with httpx.Client(timeout=10) as client:
        for body in bodies:
            raw = json.dumps(body).encode()
            stamp = str(int(time.time()))
            signature = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256)
            response = client.post(
                url,
                content=raw,
                headers={
                    "Content-Type": "application/json",
                    "X-DD0C-Timestamp": stamp,
                    "X-DD0C-Signature": "v1=" + signature.hexdigest(),
                },
            )
            accepted += response.status_code == 202
    print(f"sent {len(bodies)} events, {accepted} accepted, to tenant {tenant.id}")  # noqa: T201
    print(f"API key: {api_key}")  # noqa: T201
    print(f"see them: curl -H 'Authorization: Bearer {api_key}' {base_url}/v1/alerts")  # noqa: T201
