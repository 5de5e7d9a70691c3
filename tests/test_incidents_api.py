"""The incidents API end to end: signed webhooks in, the real worker correlates, the
REST API lists, explains and changes incidents."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.pipeline.incident_view import incident_view
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import incident_queries
from test_smoke_custom import sign

SECRET = "s3cret"


def tenant_with_hook(runtime: Runtime, name: str = "acme") -> TenantHandle:
    created = runtime.store.create_tenant(name)
    handle = TenantHandle(created.id, runtime.store.create_api_key(created.id, "test"), runtime)
    handle.integration("custom", SECRET)
    return handle


@pytest.fixture
def acme(runtime: Runtime) -> TenantHandle:
    return tenant_with_hook(runtime)


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def alert(
    title: str, service: str, minutes_ago: float, severity: str = "high", **extra: Any
) -> dict[str, Any]:
    return {
        "title": title,
        "service": service,
        "severity": severity,
        "started_at": ago(minutes_ago),
        **extra,
    }


def send(client: TestClient, tenant: TenantHandle, *items: dict[str, Any]) -> None:
    body = json.dumps(list(items)).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert response.status_code == 202, response.text
    drain(tenant.runtime)


def get(client: TestClient, tenant: TenantHandle, path: str, status: int = 200) -> Any:
    response = client.get(path, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


def post(
    client: TestClient,
    tenant: TenantHandle,
    path: str,
    body: Any = None,
    status: int = 200,
) -> Any:
    response = client.post(path, json=body, headers=tenant.auth)
    assert response.status_code == status, response.text
    return response.json()


def query(**values: str) -> str:
    return "?" + urlencode(values)


def incidents(client: TestClient, tenant: TenantHandle, query: str = "") -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(client, tenant, f"/v1/incidents{query}")["items"]
    return items


# --- grouping and what an incident says about itself --------------------------------------


def test_three_alerts_for_one_service_within_five_minutes_are_one_incident(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Latency high", "checkout", 4))
    send(client, acme, alert("Error rate high", "checkout", 2))
    send(client, acme, alert("Pods restarting", "checkout", 0))
    [incident] = incidents(client, acme)
    assert incident["status"] == "open"
    assert incident["services"] == ["checkout"]
    assert incident["alert_count"] == 3
    assert incident["firing"] == 3
    assert incident["probable_root"] == "checkout"
    assert incident["title"] == "Latency high"
    assert incident["severity"] == "high"
    assert incident["resolved_at"] is None
    assert incident["deploys"] == []
    assert incident["paged"] is True
    assert incident["merged_into"] is None
    assert {"noise_score", "noise_reasons", "flapping", "snoozed_until", "last_at"} <= set(incident)

    listed = get(client, acme, "/v1/alerts")["items"]
    assert {a["incident_id"] for a in listed} == {incident["id"]}
    first = min(listed, key=lambda a: a["started_at"])
    assert incident["opened_at"] == first["started_at"]


def test_detail_has_alerts_timeline_with_reasons_and_noise(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Latency high", "checkout", 3, severity="medium"))
    send(client, acme, alert("Error rate high", "checkout", 1, severity="medium"))
    send(client, acme, alert("Error rate high", "checkout", 1, severity="medium"))  # a repeat
    [incident] = incidents(client, acme)
    detail = get(client, acme, f"/v1/incidents/{incident['id']}")

    assert [a["title"] for a in detail["alerts"]] == ["Latency high", "Error rate high"]
    assert all(a["raw_url"] == f"/v1/alerts/{a['id']}/raw" for a in detail["alerts"])
    raw = client.get(detail["alerts"][0]["raw_url"], headers=acme.auth)
    assert raw.headers["content-type"] == "application/json"
    assert raw.headers["x-content-type-options"] == "nosniff"  # the sender's bytes: no page
    assert raw.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert detail["alerts_truncated"] is False
    outcomes = [(e["kind"], e["outcome"]) for e in detail["timeline"]]
    assert outcomes == [("decision", "new_incident"), ("decision", "joined")]
    new, joined = detail["timeline"]
    assert new["page"] is True and joined["page"] is False
    assert any("no incident of checkout" in r for r in new["reasons"])
    assert any(r.startswith("same service checkout") for r in joined["reasons"])
    # The repeat changed nothing: it is counted on its alert, not a timeline entry.
    assert [a["repeat_count"] for a in detail["alerts"]] == [1, 2]
    assert new["at"] <= joined["at"]
    assert detail["noise"] == {"score": 5, "reasons": ["+5 severity medium"]}
    assert detail["noise_score"] == 5

    alert_detail = get(client, acme, f"/v1/alerts/{joined['alert_id']}")
    assert alert_detail["incident_id"] == incident["id"]
    decision = alert_detail["decision"]
    assert decision["outcome"] == "joined"  # where it went and why, not "repeat #1"
    assert decision["alert_id"] == joined["alert_id"]
    assert decision["incident_id"] == incident["id"]


def test_a_long_firing_alert_leaves_the_rest_of_the_timeline_in_view(
    client: TestClient, acme: TenantHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alertmanager re-sends a firing group every few minutes. Each repeat was a
    decision dated at its alert's start, so an alert that fired for a day filled the
    timeline's first DETAIL_LIMIT entries and hid the joins and the resolve after it."""
    monkeypatch.setattr(incident_queries, "DETAIL_LIMIT", 5)
    for _ in range(8):
        send(client, acme, alert("Latency high", "checkout", 3, fingerprint="lat"))
    send(client, acme, alert("Error rate high", "checkout", 2, fingerprint="err"))
    send(client, acme, alert("Latency high", "checkout", 3, fingerprint="lat", status="resolved"))
    [incident] = incidents(client, acme)
    detail = get(client, acme, f"/v1/incidents/{incident['id']}")
    outcomes = [e["outcome"] for e in detail["timeline"]]
    assert outcomes == ["new_incident", "joined", "resolved"]
    assert detail["timeline_truncated"] is False
    assert [a["repeat_count"] for a in detail["alerts"]] == [8, 1]  # notifications


def test_a_repeat_that_changes_something_keeps_its_decision(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Latency high", "checkout", 3, severity="low", fingerprint="lat"))
    send(client, acme, alert("Latency high", "checkout", 3, severity="critical", fingerprint="lat"))
    [incident] = incidents(client, acme)
    timeline = get(client, acme, f"/v1/incidents/{incident['id']}")["timeline"]
    assert [e["outcome"] for e in timeline] == ["new_incident", "dedup"]
    assert any("raises the incident's severity to critical" in r for r in timeline[1]["reasons"])


def test_resolve_events_resolve_the_incident(client: TestClient, acme: TenantHandle) -> None:
    send(client, acme, alert("Disk full", "db", 3, fingerprint="disk"))
    send(client, acme, alert("Disk full", "db", 3, fingerprint="disk", status="resolved"))
    [incident] = incidents(client, acme)
    assert incident["status"] == "resolved"
    assert incident["resolved_at"] is not None
    [listed] = get(client, acme, "/v1/alerts")["items"]
    decision = get(client, acme, f"/v1/alerts/{listed['id']}")["decision"]
    assert decision["outcome"] == "resolved"
    assert any("incident resolved" in r for r in decision["reasons"])


# --- filters and pagination ------------------------------------------------------------------


def test_filters_and_cursor_pagination(client: TestClient, acme: TenantHandle) -> None:
    services = ["api", "db", "cache", "queue", "search"]
    for service in services:
        severity = "critical" if service == "db" else "low"
        send(client, acme, alert(f"{service} down", service, 1, severity=severity))
    everything = incidents(client, acme)
    assert [i["services"] for i in everything] == [[s] for s in reversed(services)]

    [db] = incidents(client, acme, "?severity=critical")
    assert db["services"] == ["db"]
    assert [i["services"] for i in incidents(client, acme, "?service=cache")] == [["cache"]]
    assert incidents(client, acme, "?service=nothing") == []

    post(client, acme, f"/v1/incidents/{db['id']}/resolve")
    assert [i["id"] for i in incidents(client, acme, "?status=resolved")] == [db["id"]]
    assert len(incidents(client, acme, "?status=open")) == 4
    assert incidents(client, acme, "?status=acknowledged") == []

    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    earlier = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    assert len(incidents(client, acme, query(since=earlier))) == 5
    assert incidents(client, acme, query(since=later)) == []
    assert incidents(client, acme, query(until=earlier)) == []
    assert len(incidents(client, acme, query(since=earlier, until=later, severity="low"))) == 4

    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = get(client, acme, "/v1/incidents?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in everything]

    assert get(client, acme, "/v1/incidents?cursor=nonsense", status=400)["error"] == (
        "bad_request"
    )
    assert get(client, acme, "/v1/incidents?status=sleeping", status=422)["error"] == (
        "invalid_request"
    )


# --- actions ---------------------------------------------------------------------------------


def test_actions_follow_the_state_rules_and_land_on_the_timeline(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Queue backlog", "queue", 1))
    [incident] = incidents(client, acme)
    base = f"/v1/incidents/{incident['id']}"

    acked = post(client, acme, f"{base}/ack")
    assert acked["status"] == "acknowledged" and acked["acknowledged_at"] is not None
    conflict = post(client, acme, f"{base}/ack", status=409)
    assert conflict["error"] == "invalid_transition"
    assert "acknowledged" in conflict["detail"]
    assert post(client, acme, f"{base}/reopen", status=409)["error"] == "invalid_transition"

    before = datetime.now(UTC)
    snoozed = post(client, acme, f"{base}/snooze", {"minutes": 30})
    until = datetime.fromisoformat(snoozed["snoozed_until"])
    assert before + timedelta(minutes=29) < until < before + timedelta(minutes=31)
    default = post(client, acme, f"{base}/snooze")
    assert datetime.fromisoformat(default["snoozed_until"]) > before + timedelta(minutes=59)
    assert post(client, acme, f"{base}/snooze", {"minutes": 0}, status=422)["error"] == (
        "invalid_request"
    )

    resolved = post(client, acme, f"{base}/resolve")
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert resolved["snoozed_until"] is None  # a recurrence must not read as snoozed
    for action in ("resolve", "ack", "snooze"):
        assert post(client, acme, f"{base}/{action}", status=409)["error"] == ("invalid_transition")

    reopened = post(client, acme, f"{base}/reopen")
    assert reopened["status"] == "open" and reopened["resolved_at"] is None
    assert reopened["acknowledged_at"] == acked["acknowledged_at"]  # the first ack counts
    assert reopened["snoozed_until"] is None  # the snooze ended with the resolve

    timeline = get(client, acme, base)["timeline"]
    assert [e["kind"] for e in timeline] == [
        "decision",
        "ack",
        "snooze",
        "snooze",
        "resolve",
        "reopen",
    ]
    assert all(e["actor"].startswith("key:") for e in timeline[1:])  # the calling API key
    assert timeline[2]["detail"]["minutes"] == 30

    missing = post(client, acme, "/v1/incidents/01JUNKJUNKJUNKJUNKJUNKJUNK/ack", status=404)
    assert missing["error"] == "not_found"


def test_another_tenants_incident_is_not_found(
    client: TestClient, acme: TenantHandle, runtime: Runtime
) -> None:
    send(client, acme, alert("Disk full", "db", 1))
    [incident] = incidents(client, acme)
    other = tenant_with_hook(runtime, "other")
    base = f"/v1/incidents/{incident['id']}"
    assert incidents(client, other) == []
    assert get(client, other, base, status=404)["error"] == "not_found"
    for action in ("ack", "resolve", "snooze", "reopen"):
        post(client, other, f"{base}/{action}", status=404)
    post(client, other, f"{base}/feedback", {"verdict": "noise"}, status=404)
    assert get(client, acme, base)["status"] == "open"
    assert client.get("/v1/incidents").status_code == 401


# --- topology, deploys, merges ---------------------------------------------------------------


def test_a_cascade_across_declared_dependencies_is_one_incident_with_its_root(
    client: TestClient, acme: TenantHandle, runtime: Runtime
) -> None:
    topology = {"dependencies": {"checkout": ["payments-db"], "frontend": ["checkout"]}}
    response = client.put("/v1/topology", json=topology, headers=acme.auth)
    assert response.status_code == 200, response.text
    assert response.json() == topology
    deploy = {
        "kind": "deploy",
        "service": "payments-db",
        "version": "v42",
        "author": "ana",
        "title": "Tune connection pool",
        "url": "https://ci.example.com/42",
        "started_at": ago(8),
    }
    send(client, acme, deploy)
    # The dependents alert first; the database they all depend on is the root.
    send(client, acme, alert("5xx on frontend", "frontend", 3))
    send(client, acme, alert("Checkout slow", "checkout", 2))
    send(client, acme, alert("DB connections exhausted", "payments-db", 1))

    [incident] = incidents(client, acme)
    assert sorted(incident["services"]) == ["checkout", "frontend", "payments-db"]
    assert incident["probable_root"] == "payments-db"
    [cause] = incident["deploys"]
    assert {k: cause[k] for k in ("service", "version", "author", "title", "url")} == {
        "service": "payments-db",
        "version": "v42",
        "author": "ana",
        "title": "Tune connection pool",
        "url": "https://ci.example.com/42",
    }
    assert cause["id"] and cause["started_at"]
    assert any("deploy v42 of payments-db" in r for r in incident["noise_reasons"])

    # The same alerts without declared dependencies stay three incidents.
    plain = tenant_with_hook(runtime, "plain")
    for item in (
        alert("5xx on frontend", "frontend", 3),
        alert("Checkout slow", "checkout", 2),
        alert("DB connections exhausted", "payments-db", 1),
    ):
        send(client, plain, item)
    assert len(incidents(client, plain)) == 3


def test_a_bridging_alert_merges_incidents_and_the_merged_id_points_on(
    client: TestClient, acme: TenantHandle
) -> None:
    response = client.put(
        "/v1/topology", json={"dependencies": {"web": ["auth", "billing"]}}, headers=acme.auth
    )
    assert response.status_code == 200
    send(client, acme, alert("Auth errors", "auth", 4))
    send(client, acme, alert("Billing errors", "billing", 3))
    assert len(incidents(client, acme)) == 2
    send(client, acme, alert("Web errors", "web", 2))

    [live] = incidents(client, acme)
    assert live["alert_count"] == 3
    detail = get(client, acme, f"/v1/incidents/{live['id']}")
    assert sorted(a["service"] for a in detail["alerts"]) == ["auth", "billing", "web"]
    merged_ids = {e["incident_id"] for e in detail["timeline"]} - {live["id"]}
    assert len(merged_ids) == 1
    [merged_id] = merged_ids
    assert any("merged into" in r for e in detail["timeline"] for r in e["reasons"])

    merged = get(client, acme, f"/v1/incidents/{merged_id}")
    assert merged["merged_into"] == live["id"]
    assert merged["alerts"] == []
    assert (merged["firing"], live["firing"]) == (0, 3)  # its alerts fire in the live one
    conflict = post(client, acme, f"/v1/incidents/{merged_id}/ack", status=409)
    assert live["id"] in conflict["detail"]
    feedback = post(
        client, acme, f"/v1/incidents/{merged_id}/feedback", {"verdict": "useful"}, status=201
    )
    assert feedback["incident_id"] == live["id"]


def bridged_pair(client: TestClient, tenant: TenantHandle) -> tuple[str, str]:
    """Two incidents (auth, then billing a minute later) a web alert will bridge."""
    response = client.put(
        "/v1/topology", json={"dependencies": {"web": ["auth", "billing"]}}, headers=tenant.auth
    )
    assert response.status_code == 200, response.text
    send(client, tenant, alert("Auth errors", "auth", 4))
    send(client, tenant, alert("Billing errors", "billing", 3))
    billing, auth = (x["id"] for x in incidents(client, tenant))  # newest first
    return auth, billing


def test_a_bridge_keeps_the_acknowledgement_of_the_incident_it_merges_away(
    client: TestClient, acme: TenantHandle
) -> None:
    older, younger = bridged_pair(client, acme)
    acked = post(client, acme, f"/v1/incidents/{younger}/ack")
    send(client, acme, alert("Web errors", "web", 2))

    [live] = incidents(client, acme)
    assert live["id"] == older
    assert live["status"] == "acknowledged"  # someone is on it: not open, not escalated
    assert live["acknowledged_at"] == acked["acknowledged_at"]
    assert (live["alert_count"], live["firing"], live["resolved_at"]) == (3, 3, None)
    view = acme.runtime.store.notification_detail(acme.id, older)
    assert view is not None and view["acknowledged_at"] == acked["acknowledged_at"]


def test_a_bridge_records_the_merge_on_both_timelines_as_a_merge_by_hand_does(
    client: TestClient, acme: TenantHandle
) -> None:
    older, younger = bridged_pair(client, acme)
    send(client, acme, alert("Web errors", "web", 2))

    merged = get(client, acme, f"/v1/incidents/{younger}")
    [entry] = [e for e in merged["timeline"] if e["kind"] == "merge"]
    assert entry["incident_id"] == younger and entry["detail"] == {"into": older}
    assert entry["actor"] == "correlation" and entry["at"] == merged["resolved_at"]
    assert (merged["status"], merged["firing"], merged["alert_count"]) == ("resolved", 0, 1)
    assert merged["merged_into"] == older

    live = get(client, acme, f"/v1/incidents/{older}")
    entries = [e for e in live["timeline"] if e["kind"] == "merge"]
    assert {(e["incident_id"], tuple(e["detail"].items())) for e in entries} == {
        (younger, (("into", older),)),
        (older, (("merged", younger),)),
    }


def test_a_merge_by_hand_keeps_the_earliest_acknowledgement_and_who_made_it(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Queue backlog", "queue", 4))
    send(client, acme, alert("Cache misses", "cache", 3))
    cache, queue = (x["id"] for x in incidents(client, acme))
    store = acme.runtime.store
    first = store.incident_action(acme.id, cache, "ack", actor="user:ana@example.com")
    store.incident_action(acme.id, queue, "ack", actor="user:bob@example.com")
    assert first is not None

    merged = store.merge_incident(acme.id, cache, queue, actor="user:bob@example.com")
    assert merged is not None
    assert (merged["status"], merged["acknowledged_at"]) == (
        "acknowledged",
        first["acknowledged_at"],
    )
    detail = store.notification_detail(acme.id, queue)
    assert detail is not None
    shown = incident_view(detail, acme.id, "https://dd0c.example.com")
    assert shown.acknowledged_by == "user:ana@example.com"


def test_a_merge_by_hand_of_a_live_incident_into_a_resolved_one_is_live(
    client: TestClient, acme: TenantHandle
) -> None:
    send(client, acme, alert("Queue backlog", "queue", 4))
    send(client, acme, alert("Cache misses", "cache", 3))
    cache, queue = (x["id"] for x in incidents(client, acme))
    post(client, acme, f"/v1/incidents/{queue}/resolve")
    merged = post(client, acme, f"/v1/incidents/{cache}/merge", {"into": queue})
    assert (merged["status"], merged["resolved_at"], merged["firing"]) == ("open", None, 2)


def test_alerts_merged_within_one_batch_point_at_the_live_incident(
    client: TestClient, acme: TenantHandle
) -> None:
    client.put(
        "/v1/topology", json={"dependencies": {"web": ["auth", "billing"]}}, headers=acme.auth
    )
    send(
        client,
        acme,
        alert("Auth errors", "auth", 4),
        alert("Billing errors", "billing", 3),
        alert("Web errors", "web", 2),
    )
    [live] = incidents(client, acme)
    assert {a["incident_id"] for a in get(client, acme, "/v1/alerts")["items"]} == {live["id"]}


# --- settings, governance, feedback ----------------------------------------------------------


def test_a_wider_window_groups_alerts_seven_minutes_apart(
    client: TestClient, acme: TenantHandle, runtime: Runtime
) -> None:
    wide = tenant_with_hook(runtime, "wide")
    response = client.patch(
        "/v1/settings", json={"correlation_window_seconds": 600}, headers=wide.auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["correlation_window_seconds"] == 600
    for tenant in (acme, wide):
        send(client, tenant, alert("Slow queries", "api", 7))
        send(client, tenant, alert("Timeouts", "api", 0))
    assert len(incidents(client, acme)) == 2
    [grouped] = incidents(client, wide)
    assert grouped["alert_count"] == 2


def test_strict_silence_suppresses_medium_not_critical_and_logs_it(
    client: TestClient, acme: TenantHandle, runtime: Runtime
) -> None:
    client.patch("/v1/settings", json={"governance_mode": "strict"}, headers=acme.auth)
    silence = post(
        client,
        acme,
        "/v1/silences",
        {"matchers": '{service="db"}', "author": "ana", "comment": "migration"},
        status=201,
    )
    send(client, acme, alert("Replication lag", "db", 2, severity="medium"))
    send(client, acme, alert("Primary down", "db", 1, severity="critical"))

    alerts = {a["title"]: a for a in get(client, acme, "/v1/alerts")["items"]}
    medium = get(client, acme, f"/v1/alerts/{alerts['Replication lag']['id']}")["decision"]
    critical = get(client, acme, f"/v1/alerts/{alerts['Primary down']['id']}")["decision"]
    assert medium["suppressed_by"] == silence["id"] and medium["page"] is False
    assert any("matches silence" in r and "by ana: migration" in r for r in medium["reasons"])
    assert critical["suppressed_by"] is None and critical["would_suppress"] is None
    assert any("delivered anyway: critical alerts" in r for r in critical["reasons"])

    [logged] = get(client, acme, "/v1/suppressions")["items"]
    assert logged["alert_id"] == medium["alert_id"]
    assert (logged["mode"], logged["rule_id"]) == ("suppressed", silence["id"])
    assert (logged["title"], logged["service"], logged["severity"]) == (
        "Replication lag",
        "db",
        "medium",
    )
    assert logged["replayed_at"] is None

    replayed = post(client, acme, f"/v1/suppressions/{logged['decision_id']}/replay")
    assert replayed["replayed_at"] is not None
    again = post(client, acme, f"/v1/suppressions/{logged['decision_id']}/replay")
    assert again["replayed_at"] == replayed["replayed_at"]
    audited = get(client, acme, "/v1/audit?action=suppression.replay")["items"]
    assert [e["target_id"] for e in audited] == [
        logged["decision_id"]
    ]  # once: the repeat changed nothing
    timeline = get(client, acme, f"/v1/incidents/{medium['incident_id']}")["timeline"]
    [replay] = [e for e in timeline if e["kind"] == "replay"]
    assert replay["detail"] == {
        "decision_id": logged["decision_id"],
        "alert_id": logged["alert_id"],
    }

    other = tenant_with_hook(runtime, "other")
    assert get(client, other, "/v1/suppressions")["items"] == []
    post(client, other, f"/v1/suppressions/{logged['decision_id']}/replay", status=404)
    post(client, acme, f"/v1/suppressions/{critical['decision_id']}/replay", status=404)


def test_audit_mode_logs_would_suppress_and_refuses_replay(
    client: TestClient, acme: TenantHandle
) -> None:
    post(
        client,
        acme,
        "/v1/silences",
        {"matchers": [{"name": "service", "op": "=", "value": "db"}]},
        status=201,
    )
    send(client, acme, alert("Replication lag", "db", 2, severity="medium"))
    send(client, acme, alert("Disk slow", "db", 1, severity="low"))
    logged = get(client, acme, "/v1/suppressions")["items"]
    assert [(i["title"], i["mode"]) for i in logged] == [
        ("Disk slow", "would_suppress"),
        ("Replication lag", "would_suppress"),
    ]
    assert get(client, acme, "/v1/suppressions?mode=suppressed")["items"] == []
    page = get(client, acme, "/v1/suppressions?mode=would_suppress&limit=1")
    assert [i["title"] for i in page["items"]] == ["Disk slow"]
    rest = get(client, acme, f"/v1/suppressions?mode=would_suppress&cursor={page['next_cursor']}")
    assert [i["title"] for i in rest["items"]] == ["Replication lag"]
    assert rest["next_cursor"] is None
    refused = post(client, acme, f"/v1/suppressions/{logged[0]['decision_id']}/replay", status=409)
    assert refused["error"] == "not_suppressed"


def test_inhibition_marks_the_target_alert(client: TestClient, acme: TenantHandle) -> None:
    rule = post(
        client,
        acme,
        "/v1/inhibitions",
        {
            "source": '{severity="critical"}',
            "target": '{severity=~"medium|low"}',
            "equal": ["service"],
        },
        status=201,
    )
    send(client, acme, alert("Primary down", "db", 2, severity="critical"))
    send(client, acme, alert("Replication lag", "db", 1, severity="medium"))
    send(client, acme, alert("Cache misses", "cache", 1, severity="medium"))
    alerts = {a["title"]: a for a in get(client, acme, "/v1/alerts")["items"]}
    lag = get(client, acme, f"/v1/alerts/{alerts['Replication lag']['id']}")["decision"]
    assert lag["inhibited_by"] == alerts["Primary down"]["id"]
    assert lag["would_suppress"] == rule["id"]
    cache = get(client, acme, f"/v1/alerts/{alerts['Cache misses']['id']}")["decision"]
    assert cache["inhibited_by"] is None


def test_noise_feedback_raises_the_score_of_the_next_incident_of_that_alert(
    client: TestClient, acme: TenantHandle
) -> None:
    disk = {
        "title": "Disk almost full",
        "service": "db",
        "severity": "high",
        "fingerprint": "disk-db-1",
    }
    # Fired and resolved twice an hour and a half ago: one incident with two occurrences.
    send(client, acme, {**disk, "started_at": ago(90)})
    send(client, acme, {**disk, "status": "resolved", "started_at": ago(90), "ended_at": ago(89)})
    send(client, acme, {**disk, "started_at": ago(88)})
    send(client, acme, {**disk, "status": "resolved", "started_at": ago(88), "ended_at": ago(87)})
    [first] = incidents(client, acme)
    assert first["alert_count"] == 2 and first["status"] == "resolved"
    assert first["noise_score"] == 0

    for _ in range(2):  # a second click replaces the first verdict
        given = post(
            client, acme, f"/v1/incidents/{first['id']}/feedback", {"verdict": "noise"}, status=201
        )
        assert given["verdict"] == "noise" and given["incident_id"] == first["id"]
    post(client, acme, f"/v1/incidents/{first['id']}/feedback", {"verdict": "maybe"}, status=422)

    send(client, acme, {**disk, "started_at": ago(0)})
    second = next(i for i in incidents(client, acme) if i["id"] != first["id"])
    assert second["noise_score"] == 20
    assert second["noise_reasons"] == ["+20 marked noise once before"]
    feedback_entries = [
        e
        for e in get(client, acme, f"/v1/incidents/{first['id']}")["timeline"]
        if e["kind"] == "feedback"
    ]
    assert [e["detail"] for e in feedback_entries] == [{"verdict": "noise"}] * 2


def test_an_alert_joining_a_noisy_incident_keeps_its_history_in_the_score(
    client: TestClient, acme: TenantHandle
) -> None:
    """A touched incident is rescored from the history of all its fingerprints. Only
    the batch's was read: a first-time alert joining a CPU blip that always
    auto-resolved took its +20 and +10 away (35 down to 5)."""
    blip = {"title": "CPU blip", "service": "web", "severity": "medium", "fingerprint": "blip"}
    for hours in range(5, 0, -1):  # five past occurrences, each gone within a minute
        start, end = ago(60 * hours + 30), ago(60 * hours + 29)
        send(client, acme, {**blip, "started_at": start})
        send(client, acme, {**blip, "status": "resolved", "started_at": start, "ended_at": end})
    send(client, acme, {**blip, "started_at": ago(2)})
    [alone] = [i for i in incidents(client, acme, "?status=open")]
    assert alone["noise_score"] == 35, alone["noise_reasons"]

    send(client, acme, alert("GC pause long", "web", 1, severity="medium", fingerprint="gc"))
    [joined] = incidents(client, acme, "?status=open")
    assert joined["id"] == alone["id"] and joined["alert_count"] == 2
    assert joined["noise_score"] == 35
    # The blip's own occurrence is stored by now: it counts itself (6 fired, 5 quick).
    assert [r.split(" fired")[0] for r in joined["noise_reasons"]] == [
        "+20 fingerprint custom:blip",
        "+10 fingerprint custom:blip",
        "+5 severity medium",
    ]


def test_an_action_waits_for_the_tenants_running_worker_batch(
    client: TestClient, acme: TenantHandle, runtime: Runtime
) -> None:
    """A worker batch loads the tenant's incidents and writes their status back when it
    commits. On PostgreSQL an ack made in between was lost (the incident open again,
    though `acknowledged_at` was set): people's actions now take the tenant's worker
    lock, as merges did. SQLite's single writer orders them already."""
    send(client, acme, alert("Disk full", "db", 5))
    [incident] = incidents(client, acme)
    done: list[Any] = []
    with runtime.store.transaction([acme.id]):  # as a worker batch under way
        acking = threading.Thread(
            target=lambda: done.append(
                runtime.store.incident_action(acme.id, incident["id"], "ack")
            )
        )
        acking.start()
        acking.join(timeout=1.0)
        assert acking.is_alive() and not done  # waits for the batch to commit
    acking.join(timeout=30)
    assert done and done[0]["status"] == "acknowledged"


def test_messages_say_snoozed_only_while_the_snooze_lasts(
    client: TestClient, acme: TenantHandle
) -> None:
    """A snooze is not cleared when it runs out: an incident snoozed yesterday and
    reopened by a firing alert today read "Snoozed until" yesterday in Slack and mail."""
    send(client, acme, alert("Queue backlog", "queue", 4))
    [incident] = incidents(client, acme)
    post(client, acme, f"/v1/incidents/{incident['id']}/snooze", {"minutes": 30})
    detail = acme.runtime.store.notification_detail(acme.id, incident["id"])
    assert detail is not None
    assert incident_view(detail, acme.id, "https://x").status == "snoozed"
    lapsed = {**detail, "snoozed_until": (datetime.now(UTC) - timedelta(hours=20)).isoformat()}
    assert incident_view(lapsed, acme.id, "https://x").status == "open"
