"""Shared helpers for the HTTP webhook tests: fixture discovery, per-provider auth,
a runtime of one's own, and reading back what the pipeline stored for one event."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from conftest import FIXTURES, TenantHandle, backend_overrides
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.domain.models import Normalised
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.providers.base import Delivery, PayloadError
from dd0c_alert.providers.parse import json_document
from dd0c_alert.storage.ports import AlertFilter
from dd0c_alert.web.app import create_app

#: Fixture folder → provider URL name, where they differ.
DIR_PROVIDER = {"pagerduty_events_v2": "pagerduty-events"}

#: Providers whose proof is a static token (bearer / basic / X-DD0C-Token).
TOKEN_PROVIDERS = frozenset({"alertmanager", "datadog", "opsgenie", "argocd"})

#: GitLab's X-Gitlab-Event for each ``object_kind``, for bodies recorded without headers.
GITLAB_EVENTS = {
    "deployment": "Deployment Hook",
    "pipeline": "Pipeline Hook",
    "build": "Job Hook",
    "push": "Push Hook",
    "merge_request": "Merge Request Hook",
}

#: Headers of a recording that carry a credential or describe the old wire framing:
#: never replayed as-is (auth_headers makes fresh ones).
_NOT_REPLAYED = frozenset(
    {
        "authorization",
        "content-length",
        "host",
        "accept-encoding",
        "transfer-encoding",
        "x-hub-signature",
        "x-hub-signature-256",
        "x-gitlab-token",
        "x-pagerduty-signature",
        "x-grafana-alerting-signature",
        "x-grafana-alerting-timestamp",
        "x-dd0c-signature",
        "x-dd0c-timestamp",
        "x-dd0c-token",
    }
)
#: Headers naming a delivery: replaying them twice in one tenant is a duplicate.
DELIVERY_ID_HEADERS = frozenset(
    {"x-github-delivery", "x-webhook-id", "idempotency-key", "x-gitlab-event-uuid"}
)


@dataclass(frozen=True)
class FixtureCase:
    provider: str
    path: Path
    body: bytes
    #: The recorded request headers (original spelling), empty when none were recorded.
    recorded: dict[str, str]
    #: The secret the recording was signed with, when its headers file names one.
    recorded_secret: str | None

    @property
    def id(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def provider_of_dir(name: str) -> str:
    return DIR_PROVIDER.get(name, name)


def fixture_cases() -> list[FixtureCase]:
    """Every body fixture in every provider folder (``_``-prefixed folders are not
    single deliveries), registered provider or not."""
    cases: list[FixtureCase] = []
    for folder in sorted(p for p in FIXTURES.iterdir() if p.is_dir()):
        if folder.name.startswith("_"):
            continue
        for path in sorted(folder.glob("*.json")):
            if path.name.endswith(".headers.json"):
                continue
            meta_path = path.with_name(path.name.removesuffix(".json") + ".headers.json")
            recorded: dict[str, str] = {}
            secret = None
            if meta_path.exists():
                meta = json.loads(meta_path.read_bytes())
                recorded = dict(meta.get("headers") or {})
                secret = (meta.get("signature") or {}).get("secret")
            cases.append(
                FixtureCase(provider_of_dir(folder.name), path, path.read_bytes(), recorded, secret)
            )
    return cases


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def _loads(body: bytes) -> Any:
    try:
        return json_document(body)
    except orjson.JSONDecodeError:
        return None


def routing_keys(body: bytes) -> list[Any]:
    """The ``routing_key`` of every event of an Events API v2 body (None where absent)."""
    document = _loads(body)
    events = document if isinstance(document, list) else [document]
    return [event.get("routing_key") if isinstance(event, dict) else None for event in events]


def integration_secret(provider: str, body: bytes, default: str) -> str:
    """The secret the integration must hold for ``body`` to authenticate.

    Events API v2 has no signature: the body's ``routing_key`` is the credential, so
    the integration's secret is the first event's routing key.
    """
    if provider == "pagerduty-events":
        keys = routing_keys(body)
        if keys and isinstance(keys[0], str) and keys[0]:
            return keys[0]
    return default


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def auth_headers(
    provider: str, body: bytes, secret: str, recorded_headers: Mapping[str, str]
) -> dict[str, str]:
    """Valid proof of origin for ``body`` under ``secret``, in the provider's native
    scheme, plus the event-kind header a provider needs to read the body."""
    recorded = lower(recorded_headers)
    now = str(int(time.time()))
    if provider in TOKEN_PROVIDERS:
        return {"Authorization": f"Bearer {secret}"}
    if provider == "grafana":
        if "x-grafana-alerting-signature" in recorded:
            return {
                "X-Grafana-Alerting-Timestamp": now,
                "X-Grafana-Alerting-Signature": _hmac_hex(secret, now.encode() + b":" + body),
            }
        return {"Authorization": f"Bearer {secret}"}
    if provider == "pagerduty":
        return {"X-PagerDuty-Signature": "v1=" + _hmac_hex(secret, body)}
    if provider == "pagerduty-events":
        return {}  # the routing_key in the body is the proof: see integration_secret
    if provider == "github":
        headers = {"X-Hub-Signature-256": "sha256=" + _hmac_hex(secret, body)}
        if event := recorded.get("x-github-event"):
            headers["X-GitHub-Event"] = event
        return headers
    if provider == "gitlab":
        headers = {"X-Gitlab-Token": secret}
        event = recorded.get("x-gitlab-event")
        if not event:
            document = _loads(body)
            kind = document.get("object_kind") if isinstance(document, dict) else None
            event = GITLAB_EVENTS.get(kind) if isinstance(kind, str) else None
        if event:
            headers["X-Gitlab-Event"] = event
        return headers
    if provider == "custom":
        signature = _hmac_hex(secret, now.encode() + b"." + body)
        return {"X-DD0C-Timestamp": now, "X-DD0C-Signature": f"v1={signature}"}
    # A provider registered after these tests were written: a static token is the
    # lowest common denominator (design §5); a failure here names the gap plainly.
    return {"Authorization": f"Bearer {secret}", "X-DD0C-Token": secret}


def basic_auth(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"user:{secret}".encode()).decode()}


def replayed_headers(
    recorded_headers: Mapping[str, str], *, with_delivery_ids: bool = True
) -> dict[str, str]:
    """The recorded headers worth sending again (no credentials, no stale framing)."""
    return {
        key: value
        for key, value in recorded_headers.items()
        if key.lower() not in _NOT_REPLAYED
        and (with_delivery_ids or key.lower() not in DELIVERY_ID_HEADERS)
    }


# --- a runtime of one's own ------------------------------------------------------------


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "worker_poll_seconds": 0.02,
        "secret_key": "",
        "sqlite_synchronous": "NORMAL",
        **backend_overrides(),
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def running(data_dir: Path, **overrides: Any) -> Iterator[tuple[Runtime, TestClient]]:
    """A real embedded runtime (worker thread included) behind the real app."""
    runtime = build_runtime(make_settings(data_dir, **overrides))
    with TestClient(create_app(runtime)) as client:
        yield runtime, client


def new_tenant(runtime: Runtime, name: str = "acme") -> TenantHandle:
    created = runtime.store.create_tenant(name)
    return TenantHandle(created.id, runtime.store.create_api_key(created.id, "test"), runtime)


# --- what the pipeline made of one event -------------------------------------------------


def delivery_for(
    provider: str,
    tenant_id: str,
    event_id: str,
    sent_headers: Mapping[str, str],
    received_at: datetime | None = None,
) -> Delivery:
    return Delivery(
        tenant_id=tenant_id,
        provider=provider,
        event_id=event_id,
        received_at=received_at or datetime.now(UTC),
        headers=lower(sent_headers),
    )


def normalise_locally(provider: str, body: bytes, delivery: Delivery) -> list[Normalised] | str:
    """What the provider module makes of ``body``: its records, or the PayloadError text."""
    try:
        return PROVIDERS[provider].normalise(json_document(body), delivery)
    except PayloadError as exc:
        return str(exc)


def api_items(client: TestClient, tenant: TenantHandle, path: str) -> list[dict[str, Any]]:
    """Every item of a paged list endpoint, following cursors."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        response = client.get(path, headers=tenant.auth, params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def stored_records(runtime: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    """Alerts and deploys of a tenant, read from the store (faster than the API)."""
    everything = AlertFilter()
    alerts = runtime.store.list_alerts(tenant_id, everything, 500, None).items
    deploys = runtime.store.list_deploys(tenant_id, everything, 500, None).items
    return [*alerts, *deploys]


def dead_letters(runtime: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    return runtime.store.list_dead_letters(tenant_id, 500)


def at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- seeds: one or more real bodies per registered provider ------------------------------

#: Bodies for providers with no recorded fixtures (``custom`` is dd0c/alert's own schema).
BUILT_IN_SEEDS: dict[str, list[bytes]] = {
    "custom": [
        b'{"title": "Disk full", "service": "db", "severity": "crit",'
        b' "labels": {"host": "db-1"}, "started_at": "2025-06-01T12:00:00Z"}',
        b'[{"title": "Latency high", "status": "firing", "service": "api",'
        b' "fingerprint": "api-latency", "links": {"runbook": "https://example.com/rb"}},'
        b' {"kind": "deploy", "service": "api", "version": "1.2.3", "status": "success",'
        b' "commit": "abc123", "started_at": "2025-06-01T11:58:00Z"}]',
        b'{"title": "Disk full", "status": "resolved", "fingerprint": "disk-db-1",'
        b' "ended_at": "2025-06-01T12:30:00Z"}',
    ],
}


def seeds(provider: str) -> list[FixtureCase]:
    """Real bodies of ``provider`` to send or mutate: its fixtures, else built-in ones."""
    found = [case for case in fixture_cases() if case.provider == provider]
    found += [
        FixtureCase(provider, Path(f"{provider}/built-in-{i}.json"), body, {}, None)
        for i, body in enumerate(BUILT_IN_SEEDS.get(provider, []))
    ]
    return found


def seed(provider: str, max_bytes: int = 1 << 20) -> FixtureCase:
    """The smallest seed of ``provider`` the module turns into records and that one
    integration secret can authenticate."""
    usable = []
    for case in seeds(provider):
        keys = routing_keys(case.body) if provider == "pagerduty-events" else []
        if len(set(map(str, keys))) > 1 or len(case.body) > max_bytes:
            continue
        delivery = delivery_for(provider, "t", "e", lower(case.recorded))
        records = normalise_locally(provider, case.body, delivery)
        if isinstance(records, list) and records:
            usable.append(case)
    assert usable, f"no usable seed body for {provider}"
    return min(usable, key=lambda case: len(case.body))
