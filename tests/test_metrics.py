"""``/metrics`` after a storm: the counters agree with what the API reports."""

from __future__ import annotations

import time
from urllib.parse import quote

import orjson
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from webhook_helpers import auth_headers

SECRET = "metrics-secret"


def scrape(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= set(ls))


def counted_after(
    client: TestClient,
    before: dict[tuple[str, tuple[tuple[str, str], ...]], float],
    name: str,
    expected: float,
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape once ``name`` grew by ``expected``. The queue is empty from the commit
    of the last batch on, and the worker thread counts that batch just after it, so a
    scrape right after ``drain`` can miss its last counts."""
    deadline = time.monotonic() + 10
    while True:
        after = scrape(client)
        if total(after, name) - total(before, name) >= expected or time.monotonic() > deadline:
            return after
        time.sleep(0.02)


def test_counters_after_a_storm_match_the_api(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    integration = tenant.integration("custom", SECRET)
    url = f"/v1/wh/{tenant.id}/custom/{integration}"
    before = scrape(client)
    for n in range(30):
        alerts = [{"title": f"check {n}-{k}", "service": f"svc-{k}"} for k in range(5)]
        body = orjson.dumps(alerts)
        headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
        assert client.post(url, content=body, headers=headers).status_code == 202
    for _ in range(4):
        bad = {
            "Content-Type": "application/json",
            "X-DD0C-Timestamp": "1",
            "X-DD0C-Signature": "v1=0",
        }
        assert client.post(url, content=b"[]", headers=bad).status_code == 401
    drain(runtime)
    after = counted_after(client, before, "dd0c_processing_seconds_count", 30)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("dd0c_webhooks_total", provider="custom", outcome="accepted") == 30
    assert (
        sum(
            delta("dd0c_webhooks_total", provider="custom", outcome=reason)
            for reason in ("timestamp_expired", "signature_mismatch", "invalid_timestamp")
        )
        == 4
    )
    stored = client.get("/v1/alerts?limit=500", headers=tenant.auth).json()["items"]
    assert delta("dd0c_alerts_decided_total") == len(stored) == 150
    incidents = client.get("/v1/incidents?limit=100", headers=tenant.auth).json()["items"]
    assert delta("dd0c_alerts_decided_total", outcome="new_incident") == len(incidents)
    assert delta("dd0c_processing_seconds_count") == 30
    assert total(after, "dd0c_queue_messages") == 0
    assert total(after, "dd0c_up") == 1


@pytest.mark.parametrize("path", ["/metrics"])
def test_metrics_carry_no_tenant_ids_by_default(
    client: TestClient, tenant: TenantHandle, path: str
) -> None:
    text = client.get(path).text
    assert tenant.id not in text


def test_distinct_hostile_inputs_add_no_series(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    """Whatever senders make up (tenants, providers, integration ids, paths, services,
    alert names, labels), /metrics keeps the same series: every label is a fixed set."""
    integration = tenant.integration("custom", SECRET)
    headers = {"Content-Type": "application/json"}

    def flood(first: int, last: int) -> None:
        for i in range(first, last):
            word = f"x{i}\x1b[31m{'a' * i}"
            body = orjson.dumps([{"title": word, "service": word, "labels": {word: word}}])
            word = quote(word)  # in a path: the server decodes it
            client.post(f"/v1/wh/{word}/{word}", content=b"{}", headers=headers)
            client.post(f"/v1/wh/{word}/custom/{word}", content=body, headers=headers)
            client.post(f"/v1/wh/{tenant.id}/alertmanager/{word}", content=b"[", headers=headers)
            client.post(f"/v1/wh/{word}/a/b/c", content=b"{}", headers=headers)
            client.get(f"/{word}")
            signed = {**headers, **auth_headers("custom", body, SECRET, {})}
            url = f"/v1/wh/{tenant.id}/custom/{integration}"
            assert client.post(url, content=body, headers=signed).status_code == 202
        drain(runtime)

    flood(0, 3)
    before = set(scrape(client))
    flood(3, 60)
    assert set(scrape(client)) == before
