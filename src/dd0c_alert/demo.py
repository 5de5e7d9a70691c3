"""``dd0c-alert demo``: a realistic burst against a running server, to see the path end to end.

The story: a deploy of payments-db goes out, the database slows down, and the services
above it start to alert — with the repeats and flaps a real incident sends.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import random
import time
from datetime import UTC, datetime, timedelta

import httpx

from dd0c_alert.app import open_store
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.integrations import new_secret, webhook_url

_SERVICES = {
    "payments-db": ["DB connection pool saturated", "Replication lag high"],
    "payments-api": ["p99 latency over SLO", "5xx rate above 2%"],
    "checkout": ["Checkout error budget burning", "Cart timeouts"],
    "search": ["Search indexing delayed"],
}
_SEVERITIES = ["critical", "high", "warning", "warning", "info"]


def run_demo(
    settings: Settings,
    base_url: str,
    count: int,
    tenant_id: str | None = None,
    client: httpx.Client | None = None,
) -> list[str]:
    """Post the story into ``tenant_id`` (your own, so it shows in your dashboard) or
    into a new tenant ``demo``; return what to tell the user: which tenant, which key.
    Raises Unreachable, having created nothing, when no server answers at ``base_url``."""
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client(timeout=10))
        _check_reachable(client, base_url)
        return _run(settings, base_url, count, tenant_id, client)


class Unreachable(Exception):
    """No server answers where the demo would post."""


def _check_reachable(client: httpx.Client, base_url: str) -> None:
    """Before anything is created: each run against a stopped server left an enabled
    integration with a live secret behind, and a page of httpx traceback."""
    url = f"{base_url.rstrip('/')}/healthz"
    try:
        client.get(url)
    except httpx.TransportError as exc:
        raise Unreachable(
            f"no dd0c-alert server answers at {base_url} ({exc or type(exc).__name__}): "
            "start one with `dd0c-alert serve` (same DD0C_DATA_DIR), or pass --url"
        ) from None


def _run(
    settings: Settings, base_url: str, count: int, tenant_id: str | None, client: httpx.Client
) -> list[str]:
    store = open_store(settings)
    api_key: str | None = None
    if tenant_id is None:
        tenant_id = store.create_tenant("demo").id
        api_key = store.create_api_key(tenant_id, "demo")
    elif store.get_tenant(tenant_id) is None:
        raise ValueError(f"no tenant {tenant_id!r} (dd0c-alert tenant list shows them)")
    # Its own integration, so the demo's events are easy to tell apart and remove.
    secret = new_secret()
    integration = store.create_integration(tenant_id, "custom", "demo", secret)
    dependencies = store.tenant_config(tenant_id)[1].dependencies
    if not dependencies:  # never overwrite a topology someone declared
        store.set_dependencies(
            tenant_id, {"checkout": ["payments-api"], "payments-api": ["payments-db"]}
        )
    url = webhook_url(base_url, integration)
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
    accepted = sum(_post(client, url, secret, body) for body in bodies)
    base = base_url.rstrip("/")
    lines = [f"sent {len(bodies)} events, {accepted} accepted, to tenant {tenant_id}"]
    if api_key is None:
        return [
            *lines,
            "see them in that tenant's dashboard, or: "
            f"curl -H 'Authorization: Bearer <your API key>' {base}/v1/incidents",
            f"the demo's integration is {integration.id}: "
            f"dd0c-alert integration delete --tenant {tenant_id} {integration.id}",
        ]
    return [
        *lines,
        f"this is a new tenant 'demo' ({tenant_id}); its API key (admin, shown once): {api_key}",
        f"see them: curl -H 'Authorization: Bearer {api_key}' {base}/v1/incidents",
        "or in the dashboard: dd0c-alert user create --tenant "
        f"{tenant_id} --email you@example.com --role owner --password-stdin, then log in",
        "next time, post into your own tenant: dd0c-alert demo --tenant <tenant-id>",
    ]


def _post(client: httpx.Client, url: str, secret: str, body: object) -> bool:
    raw = json.dumps(body).encode()
    stamp = str(int(time.time()))  # Unix seconds, as the custom provider expects
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
    return response.status_code == 202
