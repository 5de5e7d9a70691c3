"""Deliveries through the REST API: listing with filters and cursor paging, replay of a
failed one, destination health, and an incident's deliveries on its detail.

The deliveries are planned and finished through the outbox as the notifier would, on
a runtime without a notifier of its own, so nothing else touches them meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.outbox import EVENT, MAIL, MESSAGE, Planned
from dd0c_alert.web.app import create_app
from test_incidents_api import alert, send, tenant_with_hook

HOOK_URL = "https://user:url-token-123@hooks.example.com/path/url-token-456"
pytestmark = pytest.mark.both_modes


@pytest.fixture
def quiet(settings: Settings) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def call(
    client: TestClient, tenant: TenantHandle, method: str, path: str, status: int = 200
) -> Any:
    response = client.request(method, path, headers=tenant.auth)
    assert response.status_code == status, response.text
    assert "url-token" not in response.text
    return response.json()


def deliveries_for(runtime: Runtime, tenant: TenantHandle, incident_id: str) -> dict[str, str]:
    """Three deliveries of one incident: Slack delivered, email failed for good (its
    destination stopped), a webhook retrying. Their ids by destination type."""
    outbox, now = runtime.outbox, datetime.now(UTC)
    planned = [
        Planned(incident_id, "slack", "#oncall", MESSAGE, "opened"),
        Planned(incident_id, "email", "a@example.com", MAIL, "opened"),
        Planned(incident_id, "webhook", HOOK_URL, EVENT, "opened"),
    ]
    assert outbox.plan(tenant.id, [], planned, now)
    leased = outbox.lease_due(tenant.id, now, 10, timedelta(minutes=5))
    ids = {}
    for item in leased:
        ids[item.destination_type] = item.id
        if item.destination_type == "slack":
            outbox.finish(
                item,
                ok=True,
                latency_ms=42.0,
                error=None,
                at=now,
                message_ref="C1:1.0",
                version_sent=1,
            )
        elif item.destination_type == "email":
            outbox.finish(item, ok=False, latency_ms=7.0, error="550 no such user", at=now)
            outbox.set_health(tenant.id, "email", "a@example.com", "stopped", "550 no such user")
        else:
            outbox.finish(
                item,
                ok=False,
                latency_ms=3000.0,
                error="HTTP 503",
                at=now,
                retry_at=now + timedelta(hours=1),
            )
    assert set(ids) == {"slack", "email", "webhook"}
    return ids


@pytest.fixture
def scene(
    quiet: tuple[TestClient, Runtime],
) -> tuple[TestClient, TenantHandle, str, dict[str, str]]:
    client, runtime = quiet
    acme = tenant_with_hook(runtime)
    send(client, acme, alert("Checkout down", "checkout", 1, severity="critical"))
    [incident] = call(client, acme, "GET", "/v1/incidents")["items"]
    return client, acme, incident["id"], deliveries_for(runtime, acme, incident["id"])


def test_list_filter_and_page(scene: tuple[TestClient, TenantHandle, str, dict[str, str]]) -> None:
    client, acme, incident_id, ids = scene
    listed = call(client, acme, "GET", "/v1/deliveries")
    assert listed["next_cursor"] is None
    by_type = {d["destination_type"]: d for d in listed["items"]}
    assert set(by_type) == {"slack", "email", "webhook"}
    assert by_type["slack"]["status"] == "delivered"
    assert by_type["slack"]["delivered_at"] is not None
    assert by_type["slack"]["message_ref"] == "C1:1.0"
    assert by_type["email"]["status"] == "failed"
    assert by_type["email"]["last_error"] == "550 no such user"
    assert by_type["webhook"]["status"] == "retrying"
    assert by_type["webhook"]["next_attempt_at"] is not None
    assert by_type["webhook"]["destination"] == "https://hooks.example.com/…"
    for item in listed["items"]:
        assert item["incident_id"] == incident_id
        assert item["attempts"] == 1

    failed = call(client, acme, "GET", "/v1/deliveries?status=failed")["items"]
    assert [d["id"] for d in failed] == [ids["email"]]
    hooks = call(client, acme, "GET", "/v1/deliveries?destination_type=webhook")["items"]
    assert [d["id"] for d in hooks] == [ids["webhook"]]
    assert call(client, acme, "GET", "/v1/deliveries?incident_id=nope")["items"] == []
    mine = call(client, acme, "GET", f"/v1/deliveries?incident_id={incident_id}")["items"]
    assert len(mine) == 3

    seen, cursor = [], None
    while True:
        page = call(
            client, acme, "GET", "/v1/deliveries?limit=1" + (f"&cursor={cursor}" if cursor else "")
        )
        seen += [d["id"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids.values())

    assert (
        call(client, acme, "GET", "/v1/deliveries?cursor=%%%", status=400)["error"] == "bad_request"
    )
    assert (
        call(client, acme, "GET", "/v1/deliveries?status=lost", status=422)["error"]
        == "invalid_request"
    )
    assert (
        call(client, acme, "GET", "/v1/deliveries?limit=0", status=422)["error"]
        == "invalid_request"
    )


def test_destinations_show_a_stopped_one_and_replay_resumes_it(
    scene: tuple[TestClient, TenantHandle, str, dict[str, str]],
) -> None:
    client, acme, _, ids = scene
    [stopped] = call(client, acme, "GET", "/v1/destinations")["items"]
    assert stopped["destination_type"] == "email"
    assert stopped["state"] == "stopped"
    assert stopped["last_error"] == "550 no such user"

    replayed = call(client, acme, "POST", f"/v1/deliveries/{ids['email']}/replay")
    assert replayed["id"] == ids["email"]
    assert replayed["status"] == "pending"
    assert call(client, acme, "GET", "/v1/destinations")["items"] == []
    # Replaying what has not failed changes nothing.
    assert (
        call(client, acme, "POST", f"/v1/deliveries/{ids['slack']}/replay")["status"] == "delivered"
    )
    assert (
        call(client, acme, "POST", "/v1/deliveries/nope/replay", status=404)["error"] == "not_found"
    )
    audited = call(client, acme, "GET", "/v1/audit?action=delivery.replay")["items"]
    assert {e["target_id"] for e in audited} == {ids["email"], ids["slack"]}


def test_another_tenant_sees_and_replays_nothing(
    scene: tuple[TestClient, TenantHandle, str, dict[str, str]],
) -> None:
    client, acme, incident_id, ids = scene
    runtime = acme.runtime
    created = runtime.store.create_tenant("other")
    other = TenantHandle(created.id, runtime.store.create_api_key(created.id, "k"), runtime)
    assert call(client, other, "GET", "/v1/deliveries") == {"items": [], "next_cursor": None}
    assert call(client, other, "GET", "/v1/destinations") == {"items": []}
    call(client, other, "POST", f"/v1/deliveries/{ids['email']}/replay", status=404)
    call(client, other, "GET", f"/v1/incidents/{incident_id}", status=404)
    failed = call(client, acme, "GET", "/v1/deliveries?status=failed")["items"]
    assert [d["id"] for d in failed] == [ids["email"]]


def test_incident_detail_lists_its_deliveries_with_every_attempt(
    scene: tuple[TestClient, TenantHandle, str, dict[str, str]],
) -> None:
    client, acme, incident_id, ids = scene
    detail = call(client, acme, "GET", f"/v1/incidents/{incident_id}")
    assert {"alerts", "timeline", "noise"} <= set(detail)  # the rest of the answer is kept
    by_type = {d["destination_type"]: d for d in detail["deliveries"]}
    assert {d["id"] for d in detail["deliveries"]} == set(ids.values())
    [tried] = by_type["slack"]["tries"]
    assert tried["ok"] is True and tried["attempt"] == 1 and tried["latency_ms"] == 42.0
    [tried] = by_type["email"]["tries"]
    assert tried["ok"] is False and tried["error"] == "550 no such user"


def test_an_incident_without_deliveries_shows_an_empty_list(
    quiet: tuple[TestClient, Runtime],
) -> None:
    client, runtime = quiet
    acme = tenant_with_hook(runtime)
    send(client, acme, alert("Disk filling", "db", 1, severity="low"))
    [incident] = call(client, acme, "GET", "/v1/incidents")["items"]
    assert call(client, acme, "GET", f"/v1/incidents/{incident['id']}")["deliveries"] == []


def test_deliveries_need_an_api_key(quiet: tuple[TestClient, Runtime]) -> None:
    client, _ = quiet
    for path in ("/v1/deliveries", "/v1/destinations"):
        assert client.get(path).status_code == 401
    assert client.post("/v1/deliveries/x/replay").status_code == 401
