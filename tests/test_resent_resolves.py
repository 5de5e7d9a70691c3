"""Real senders repeat resolves: each repeat folds into the occurrence it ends.

Alertmanager re-sends a resolved alert in later notifications of its group with a
later ``endsAt`` each time (firing x3, then partially resolved, then all resolved,
where the first pod's ``endsAt`` moves); Grafana does the same; Datadog recoveries
and PagerDuty webhooks are delivered again. None of these may become a second,
resolved alert record: the repeat folds into the occurrence, which keeps the latest
end reported (the maximum: the same result whatever order or how many times the
copies arrive, so a redelivery changes nothing).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import FIXTURES, TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from webhook_helpers import auth_headers, integration_secret, stored_records

SECRET = "resend-secret"


def fixture(provider: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((FIXTURES / provider / f"{name}.json").read_bytes())
    return document


def send(
    client: TestClient,
    runtime: Runtime,
    tenant: TenantHandle,
    provider: str,
    document: Any,
    **headers: str,
) -> None:
    body = orjson.dumps(document)
    secret = integration_secret(provider, body, SECRET)
    if not runtime.store.integrations_for(tenant.id, provider):
        tenant.integration(provider, secret)
    response = client.post(
        f"/v1/wh/{tenant.id}/{provider}",
        content=body,
        headers={
            "Content-Type": "application/json",
            **auth_headers(provider, body, secret, {}),
            **headers,
        },
    )
    assert response.status_code in (200, 202), response.text
    drain(runtime)


def alerts(runtime: Runtime, tenant: TenantHandle) -> list[dict[str, Any]]:
    return [r for r in stored_records(runtime, tenant.id) if "fingerprint" in r]


def test_alertmanager_resends_of_a_resolved_alert_fold_into_it(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    firing = fixture("alertmanager", "am_group_firing_3_alerts_handmade")
    partly = fixture("alertmanager", "am_group_partially_resolved_handmade")
    for _ in range(3):
        send(client, runtime, tenant, "alertmanager", firing)
    send(client, runtime, tenant, "alertmanager", partly)
    resolved = copy.deepcopy(firing)
    resolved["status"] = "resolved"
    for n, alert in enumerate(resolved["alerts"]):
        alert["status"] = "resolved"
        alert["endsAt"] = f"2025-05-06T10:1{5 + n}:00Z"  # the first pod's end moved on
    send(client, runtime, tenant, "alertmanager", resolved)
    stored = alerts(runtime, tenant)
    assert len(stored) == 3
    assert {a["status"] for a in stored} == {"resolved"}
    # The partly resolved notification re-reported the two pods still firing.
    assert sorted(a["repeat_count"] for a in stored) == [3, 4, 4]
    [first] = [a for a in stored if a["source_ref"] == "4a1b2c3d4e5f6071"]
    assert first["ended_at"] == "2025-05-06T10:15:00Z"  # the latest end reported


def test_grafana_resends_of_a_resolve_fold_into_it(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    send(client, runtime, tenant, "grafana", fixture("grafana", "grafana_firing_handmade"))
    resolved = fixture("grafana", "grafana_resolved_handmade")
    send(client, runtime, tenant, "grafana", resolved)
    later = copy.deepcopy(resolved)
    later["alerts"][0]["endsAt"] = "2025-05-06T12:30:00Z"
    send(client, runtime, tenant, "grafana", later)
    [stored] = alerts(runtime, tenant)
    assert stored["status"] == "resolved" and stored["repeat_count"] == 1
    assert stored["ended_at"] == "2025-05-06T12:30:00Z"
    incident = client.get(f"/v1/incidents/{stored['incident_id']}", headers=tenant.auth).json()
    assert incident["resolved_at"] == "2025-05-06T12:30:00Z"  # ends with its alert


def test_datadog_recoveries_delivered_again_fold_into_the_occurrence(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    send(client, runtime, tenant, "datadog", fixture("datadog", "keep_log_alert_triggered"))
    recovered = fixture("datadog", "keep_log_alert_recovered")
    send(client, runtime, tenant, "datadog", recovered)
    again = copy.deepcopy(recovered)
    again["date"] = again["last_updated"] = str(int(recovered["date"]) + 60_000)
    send(client, runtime, tenant, "datadog", again)
    stored = alerts(runtime, tenant)
    assert [a["status"] for a in stored] == ["resolved"]


def test_a_datadog_trigger_delivered_after_its_recovery_keeps_its_start_and_severity(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    """Out of order, the occurrence reads as it does in order: started at the trigger,
    ended at the recovery, with the trigger's (worse) severity."""
    in_order = TenantHandle(runtime.store.create_tenant("in order").id, tenant.api_key, runtime)
    for target, names in (
        (tenant, ("recovered", "triggered")),
        (in_order, ("triggered", "recovered")),
    ):
        for name in names:
            send(client, runtime, target, "datadog", fixture("datadog", f"keep_log_alert_{name}"))
    [late] = alerts(runtime, tenant)
    [right] = alerts(runtime, in_order)
    assert (late["started_at"], late["ended_at"]) == (
        "2024-12-11T15:15:33Z",
        "2024-12-11T15:28:32Z",
    )
    for key in ("status", "severity", "started_at", "ended_at"):
        assert late[key] == right[key], key


def test_a_datadog_test_notification_never_resolves_the_real_alert(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    """The monitor's "Test Notifications" button sends each tested state with ``[TEST]``
    in the title and the real monitor id and group in the body: a tested "Recovered"
    must not end the real alert of that group, which is still firing."""
    triggered = fixture("datadog", "keep_log_alert_triggered")
    send(client, runtime, tenant, "datadog", triggered)
    tested = fixture("datadog", "keep_log_alert_recovered")
    tested["title"] = "[TEST] " + tested["title"]
    tested["body"] = tested["body"].replace(
        "%%%\n", "%%%\nTest notification triggered by ada@example.com.\n", 1
    )
    send(client, runtime, tenant, "datadog", tested)
    stored = {a["title"]: a for a in alerts(runtime, tenant)}
    real = stored["Error monitor on service:keep-api-matvey-kuk-workflows-fix"]
    test = stored["[TEST] Error monitor on service:keep-api-matvey-kuk-workflows-fix"]
    assert (real["status"], real["ended_at"]) == ("firing", None)
    assert test["status"] == "resolved"
    assert test["labels"]["datadog_test"] == "true"


@pytest.mark.parametrize("webhook_ids", [("w-1", "w-2")])
def test_pagerduty_resolved_webhooks_delivered_again_fold_into_the_incident(
    client: TestClient, runtime: Runtime, tenant: TenantHandle, webhook_ids: tuple[str, str]
) -> None:
    triggered = fixture("pagerduty", "v3_incident_triggered_incident_key_handmade")
    send(client, runtime, tenant, "pagerduty", triggered, **{"X-Webhook-Id": "w-0"})
    resolved = fixture("pagerduty", "v3_incident_resolved_incident_key_handmade")
    send(client, runtime, tenant, "pagerduty", resolved, **{"X-Webhook-Id": webhook_ids[0]})
    again = copy.deepcopy(resolved)
    again["event"]["id"] = "01HANDMADERESOLVEDAGAIN000"
    again["event"]["occurred_at"] = "2021-04-26T18:07:11.000Z"
    send(client, runtime, tenant, "pagerduty", again, **{"X-Webhook-Id": webhook_ids[1]})
    stored = alerts(runtime, tenant)
    assert [a["status"] for a in stored] == ["resolved"]
    assert stored[0]["ended_at"] == "2021-04-26T18:07:11Z"


def test_a_reopened_pagerduty_incident_fires_again_and_its_resolve_ends_it(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    """PagerDuty reopens a resolved incident under the same id (``incident.reopened``):
    dd0c must show it firing again, and the next resolve must end that occurrence."""
    triggered = fixture("pagerduty", "v3_incident_triggered_chronosphere")
    resolved = fixture("pagerduty", "v3_incident_resolved_chronosphere_handmade")
    reopened = copy.deepcopy(triggered)
    reopened["event"].update(
        id="01HANDMADEREOPENED00000000",
        event_type="incident.reopened",
        occurred_at="2025-08-02T07:15:00.000Z",
    )
    acknowledged = copy.deepcopy(triggered)
    acknowledged["event"].update(
        id="01HANDMADEACKAFTERREOPEN00",
        event_type="incident.acknowledged",
        occurred_at="2025-08-02T07:20:00.000Z",
    )
    acknowledged["event"]["data"]["status"] = "acknowledged"
    resolved_again = copy.deepcopy(resolved)
    resolved_again["event"].update(
        id="01HANDMADERESOLVEDREOPENED", occurred_at="2025-08-02T07:40:00.000Z"
    )
    send(client, runtime, tenant, "pagerduty", triggered, **{"X-Webhook-Id": "w-1"})
    send(client, runtime, tenant, "pagerduty", resolved, **{"X-Webhook-Id": "w-2"})
    send(client, runtime, tenant, "pagerduty", reopened, **{"X-Webhook-Id": "w-3"})
    send(client, runtime, tenant, "pagerduty", acknowledged, **{"X-Webhook-Id": "w-4"})
    live = sorted(alerts(runtime, tenant), key=lambda a: a["started_at"])
    assert [(a["status"], a["started_at"]) for a in live] == [
        ("resolved", "2025-08-02T05:33:07Z"),
        ("firing", "2025-08-02T07:15:00Z"),
    ]
    send(client, runtime, tenant, "pagerduty", resolved_again, **{"X-Webhook-Id": "w-5"})
    send(client, runtime, tenant, "pagerduty", resolved, **{"X-Webhook-Id": "w-6"})
    ended = sorted(alerts(runtime, tenant), key=lambda a: a["started_at"])
    assert [(a["status"], a["ended_at"]) for a in ended] == [
        ("resolved", "2025-08-02T06:03:41.118000Z"),
        ("resolved", "2025-08-02T07:40:00Z"),
    ]


def test_a_custom_senders_fingerprint_finds_its_alert_as_given(
    client: TestClient, runtime: Runtime, tenant: TenantHandle
) -> None:
    alert = {"title": "Checkout latency", "service": "checkout", "fingerprint": "checkout-latency"}
    send(client, runtime, tenant, "custom", alert)
    for spelling in ("checkout-latency", "custom:checkout-latency"):
        found = client.get(f"/v1/alerts?fingerprint={spelling}", headers=tenant.auth).json()
        assert [a["source_ref"] for a in found["items"]] == ["checkout-latency"], spelling
