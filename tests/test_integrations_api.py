"""Integrations API, onboarding and product events, end to end through the real app
(both storage modes)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.storage.ports import RotationInProgress
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


def test_a_second_rotation_within_the_grace_is_refused_and_changes_nothing(
    client: TestClient, tenant: TenantHandle
) -> None:
    """Only one previous secret is kept: a second rotation would drop the first secret
    before the time the first rotation announced, refusing senders still on it."""
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    path, url = f"/v1/integrations/{created['id']}", created["webhook_url"]
    rotated = call(client, tenant, "PATCH", path, 200, json={"rotate_secret": True})

    again = client.patch(path, headers=tenant.auth, json={"rotate_secret": True, "name": "x"})
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "rotation_in_progress"
    until = datetime.fromisoformat(rotated["previous_secret_valid_until"])
    assert until.isoformat() in again.json()["detail"]
    assert webhook(client, url, created["secret"]).status_code == 202  # still in its grace
    assert webhook(client, url, rotated["secret"]).status_code == 202
    got = call(client, tenant, "GET", path, 200)
    assert got["name"] == "custom"  # nothing of the refused request was applied
    assert datetime.fromisoformat(got["previous_secret_valid_until"]) == until
    audited = call(client, tenant, "GET", "/v1/audit", 200)["items"]
    assert [e["action"] for e in audited if e["target_id"] == created["id"]].count(
        "integration.update"
    ) == 1
    # Other changes need no rotation and go through.
    assert call(client, tenant, "PATCH", path, 200, json={"name": "prod"})["name"] == "prod"


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
    # The previous secret's grace is over: another rotation is no conflict.
    assert call(client, tenant, "PATCH", path, 200, json={"rotate_secret": True})["secret"]


def test_another_tenants_integration_is_not_found(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    other = runtime.store.create_tenant("other")
    theirs = runtime.store.create_integration(other.id, "custom", "custom", "x")
    for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test")):
        kwargs: dict[str, Any] = {"json": {"enabled": False}} if method == "PATCH" else {}
        call(client, tenant, method, f"/v1/integrations/{theirs.id}{suffix}", 404, **kwargs)
    assert runtime.store.integrations_for(other.id, "custom")[0].enabled


def test_a_leaked_secret_is_refused_at_once_on_request(
    client: TestClient, tenant: TenantHandle
) -> None:
    """A rotation keeps the old secret for its grace (a day by default), and a second
    rotation is refused meanwhile: with the old secret leaked, nothing could refuse it
    before the day was out."""
    created = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    path, url = f"/v1/integrations/{created['id']}", created["webhook_url"]
    first = call(client, tenant, "PATCH", path, 200, json={"rotate_secret": True})
    assert webhook(client, url, created["secret"]).status_code == 202  # in its grace

    ended = call(client, tenant, "PATCH", path, 200, json={"revoke_previous_secret": True})
    assert ended["previous_secret_valid_until"] is None and "secret" not in ended
    refused = webhook(client, url, created["secret"])
    assert refused.status_code == 401 and refused.json()["error"] == "secret_rotated"
    assert webhook(client, url, first["secret"]).status_code == 202

    # Rotating with it keeps no old secret at all, even while none is in its grace.
    second = call(
        client,
        tenant,
        "PATCH",
        path,
        200,
        json={"rotate_secret": True, "revoke_previous_secret": True},
    )
    assert second["previous_secret_valid_until"] is None
    assert webhook(client, url, first["secret"]).json()["error"] == "secret_rotated"
    assert webhook(client, url, created["secret"]).json()["error"] == "signature_mismatch"
    assert webhook(client, url, second["secret"]).status_code == 202
    # No grace is running: a plain rotation goes through, with its grace.
    third = call(client, tenant, "PATCH", path, 200, json={"rotate_secret": True})
    assert third["previous_secret_valid_until"] is not None
    assert webhook(client, url, second["secret"]).status_code == 202
    audited = call(client, tenant, "GET", "/v1/audit?action=integration.update", 200)["items"]
    ended_entry = {"rotate_secret": False, "revoke_previous_secret": True}
    assert ended_entry in [e["detail"] for e in audited]
    # Ending a grace that is not running changes nothing and is no error.
    plain = call(client, tenant, "POST", "/v1/integrations", 201, json={"provider": "custom"})
    call(
        client,
        tenant,
        "PATCH",
        f"/v1/integrations/{plain['id']}",
        200,
        json={"revoke_previous_secret": True},
    )
    assert webhook(client, plain["webhook_url"], plain["secret"]).status_code == 202


def test_of_rotations_at_once_each_replaces_a_different_secret(
    runtime: Runtime, tenant: TenantHandle
) -> None:
    """Rotations without a grace are not refused while another runs, so several at
    once all succeed; they must still act one after another, each replacing the secret
    in force when it wrote (the UPDATE copies the column, not a value read before),
    never two the same one, which would leave a caller with a secret never in force."""
    product = runtime.store.product()
    created = runtime.store.create_integration(tenant.id, "custom", "racy", "s" * 32)
    callers = 8
    start = threading.Barrier(callers)

    def rotate(n: int) -> tuple[str, str] | None:
        start.wait()
        try:
            done = product.update_integration(
                tenant.id, created.id, new_secret=f"{n:02d}" * 16, revoke_previous=True
            )
        except RotationInProgress:
            return None
        assert done is not None and done.previous_secret is not None
        return done.previous_secret, done.secret

    with ThreadPoolExecutor(callers) as pool:
        rotated = [r for r in pool.map(rotate, range(callers)) if r is not None]
    replaced = [old for old, _ in rotated]
    assert len(set(replaced)) == len(replaced), rotated
    # The successes form one chain from the first secret to the one now in force.
    after = dict(rotated)
    secret = "s" * 32
    while secret in after:
        secret = after.pop(secret)
    assert not after and secret == product.get_integration(tenant.id, created.id).secret
