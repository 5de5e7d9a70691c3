"""Integrations API, onboarding and product events, end to end through the real app
(both storage modes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from test_smoke_custom import sign

BODY = b'{"title": "Disk full", "service": "db", "severity": "high"}'


def call(
    client: TestClient, tenant: TenantHandle, method: str, path: str, status: int, **kw: Any
) -> Any:
    response = client.request(method, path, headers=tenant.auth, **kw)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def webhook(client: TestClient, url: str, secret: str) -> Any:
    path = url.split("://", 1)[1].split("/", 1)[1]
    return client.post("/" + path, content=BODY, headers=sign(secret, BODY))


def test_onboarding_end_to_end_create_test_alert_incident(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    steps = call(client, tenant, "GET", "/v1/onboarding", 200)
    assert not steps["complete"] and not any(s["done"] for s in steps["steps"])

    created = call(
        client, tenant, "POST", "/v1/integrations", 201, json={"provider": "alertmanager"}
    )
    assert created["webhook_url"].endswith(f"/v1/wh/{tenant.id}/alertmanager/{created['id']}")
    assert created["secret"] and created["secret"] in created["setup"]
    assert "alertmanager.yml" in created["setup"]

    sent = call(client, tenant, "POST", f"/v1/integrations/{created['id']}/test", 202)
    assert sent["status"] == "accepted"
    drain(runtime)
    [incident] = call(client, tenant, "GET", "/v1/incidents", 200)["items"]
    assert incident["alert_count"] >= 1

    onboarding = call(client, tenant, "GET", "/v1/onboarding", 200)
    by_step = {s["step"]: s for s in onboarding["steps"]}
    for step in ("integration_created", "first_alert_received", "first_incident_correlated"):
        assert by_step[step]["done"], step
    seconds = by_step["first_incident_correlated"]["detail"]["seconds_from_first_alert"]
    assert 0 <= seconds < 60
    assert not by_step["notification_destination_connected"]["done"]

    events = call(client, tenant, "GET", "/v1/events", 200)["items"]
    names = [e["name"] for e in events]
    assert {"integration.created", "alert.first_received", "alert.correlation.first_match"} <= set(
        names
    )
    [match] = [e for e in events if e["name"] == "alert.correlation.first_match"]
    assert match["detail"]["seconds_from_first_alert"] == seconds
    print(f"first alert -> first correlated incident: {seconds} s")

    runtime.ingest.flush_stats()
    got = call(client, tenant, "GET", f"/v1/integrations/{created['id']}", 200)
    assert got["stats"]["accepted"] == 1 and got["stats"]["last_received_at"]
    assert "secret" not in got

    audit = call(client, tenant, "GET", "/v1/audit?action=integration.create", 200)["items"]
    assert [a["target_id"] for a in audit] == [created["id"]]
    assert audit[0]["actor"] == "key:test"  # the API key that did it


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_every_providers_test_alert_passes_the_real_webhook_path(
    client: TestClient, tenant: TenantHandle, runtime: Runtime, provider: str
) -> None:
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": provider})
    sent = call(client, tenant, "POST", f"/v1/integrations/{created['id']}/test", 202)
    assert sent["status"] == "accepted"
    drain(runtime)
    dead = runtime.store.list_dead_letters(tenant.id, 10)
    assert dead == [], dead
    # dated now, not in the sample's recording year: "opened in the last …" shows it
    made = [
        *call(client, tenant, "GET", "/v1/alerts", 200)["items"],
        *call(client, tenant, "GET", "/v1/deploys", 200)["items"],
    ]
    assert made
    for item in made:
        started = datetime.fromisoformat(item["started_at"])
        assert abs(started - datetime.now(UTC)) < timedelta(minutes=10), item


def test_rotation_keeps_the_old_secret_for_the_grace_and_disable_refuses(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    url, old = created["webhook_url"], created["secret"]
    assert webhook(client, url, old).status_code == 202

    rotated = call(
        client,
        tenant,
        "PATCH",
        f"/v1/integrations/{created['id']}",
        200,
        json={"rotate_secret": True, "name": "prod"},
    )
    new = rotated["secret"]
    assert new != old and rotated["name"] == "prod"
    assert rotated["previous_secret_valid_until"] is not None
    assert webhook(client, url, new).status_code == 202
    assert webhook(client, url, old).status_code == 202  # within the grace
    wrong = webhook(client, url, "not-the-secret")
    assert wrong.status_code == 401

    call(client, tenant, "PATCH", f"/v1/integrations/{created['id']}", 200, json={"enabled": False})
    refused = webhook(client, url, new)
    assert refused.status_code == 401 and refused.json()["error"] == "unknown_integration"
    drain(runtime)
    runtime.ingest.flush_stats()
    got = call(client, tenant, "GET", f"/v1/integrations/{created['id']}", 200)
    assert got["enabled"] is False
    assert got["stats"]["accepted"] == 3
    assert got["stats"]["rejected"] == {"signature_mismatch": 1}

    call(client, tenant, "DELETE", f"/v1/integrations/{created['id']}", 204)
    call(client, tenant, "GET", f"/v1/integrations/{created['id']}", 404)
    assert call(client, tenant, "GET", "/v1/integrations", 200)["items"] == []


def test_switches_are_json_booleans(client: TestClient, tenant: TenantHandle) -> None:
    """A string or a number was read as a boolean: "yes" rotated the secret."""
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    path = f"/v1/integrations/{created['id']}"
    for body in ({"rotate_secret": "yes"}, {"rotate_secret": 1}, {"enabled": "false"}):
        call(client, tenant, "PATCH", path, 422, json=body)
    got = call(client, tenant, "GET", path, 200)
    assert got["enabled"] is True and got["previous_secret_valid_until"] is None


def test_rotation_grace_ends(
    client: TestClient, tenant: TenantHandle, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As DD0C_SECRET_ROTATION_GRACE_SECONDS=0 would.
    monkeypatch.setattr(runtime, "rotation_grace", timedelta(0))
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    path = f"/v1/integrations/{created['id']}"
    rotated = call(client, tenant, "PATCH", path, 200, json={"rotate_secret": True})
    refused = webhook(client, created["webhook_url"], created["secret"])
    assert refused.status_code == 401 and refused.json()["error"] == "secret_rotated"
    assert webhook(client, created["webhook_url"], rotated["secret"]).status_code == 202
    other = webhook(client, created["webhook_url"], "never-this-integration-s")
    assert other.json()["error"] == "signature_mismatch"  # only the old secret is told


def test_another_tenants_integration_is_not_found(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    other = runtime.store.create_tenant("other")
    theirs = runtime.store.create_integration(other.id, "custom", "custom", "x")
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test")):
        kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "PATCH" else {}
        call(client, tenant, method, f"/v1/integrations/{theirs.id}{suffix}", 404, **kwargs)
    assert runtime.store.integrations_for(other.id, "custom")[0].enabled
