"""Search, source filter, notes and merging of incidents (both modes)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import incident_search
from test_incidents_api import alert, get, incidents, post, query, send, tenant_with_hook


def test_search_source_notes_and_merge(client: TestClient, runtime: Runtime) -> None:
    acme: TenantHandle = tenant_with_hook(runtime)
    send(
        client,
        acme,
        alert("Checkout latency 100%_high", "checkout", 120, labels={"team": "Payments"}),
    )
    send(client, acme, alert("Disk full", "db", 60, severity="critical"))
    checkout, db = sorted(incidents(client, acme), key=lambda i: i["title"])
    assert {i["id"] for i in incidents(client, acme, query(q="latency"))} == {checkout["id"]}
    assert {i["id"] for i in incidents(client, acme, query(q="LATENCY"))} == {checkout["id"]}
    assert {i["id"] for i in incidents(client, acme, query(q="100%_"))} == {checkout["id"]}
    assert incidents(client, acme, query(q="y_1")) == []  # "_" is literal, not any character
    assert {i["id"] for i in incidents(client, acme, query(q="payments"))} == {checkout["id"]}
    assert {i["id"] for i in incidents(client, acme, query(q="db"))} == {db["id"]}
    assert len(incidents(client, acme, query(source="custom"))) == 2
    assert incidents(client, acme, query(source="grafana")) == []

    note = post(client, acme, f"/v1/incidents/{db['id']}/notes", {"text": "on it"}, status=201)
    assert note["kind"] == "note" and note["actor"] == "key:test"

    merged = post(client, acme, f"/v1/incidents/{checkout['id']}/merge", {"into": db["id"]})
    assert merged["id"] == db["id"] and merged["alert_count"] == 2
    assert set(merged["services"]) == {"checkout", "db"}
    assert [i["id"] for i in incidents(client, acme)] == [db["id"]]
    detail = get(client, acme, f"/v1/incidents/{db['id']}")
    assert len(detail["alerts"]) == 2
    kinds = [e["kind"] for e in detail["timeline"] if e["kind"] != "decision"]
    assert "note" in kinds and kinds.count("merge") == 2  # both timelines, shown together
    old = get(client, acme, f"/v1/incidents/{checkout['id']}")
    assert old["merged_into"] == db["id"]
    assert (old["firing"], merged["firing"]) == (0, 2)  # its alert fires in db's incident
    again = client.post(
        f"/v1/incidents/{checkout['id']}/merge", json={"into": db["id"]}, headers=acme.auth
    )
    assert again.status_code == 409
    assert (
        client.post(
            f"/v1/incidents/{db['id']}/merge", json={"into": "nope"}, headers=acme.auth
        ).status_code
        == 404
    )
    audit = get(client, acme, "/v1/audit")["items"]
    assert [a["action"] for a in audit][:2] == ["incident.merge", "incident.note"]


def ids(client: TestClient, tenant: TenantHandle, q: str, **more: str) -> list[str]:
    return [i["id"] for i in incidents(client, tenant, query(q=q, **more))]


@pytest.mark.parametrize("scan_first", [incident_search.SCAN_FIRST, 1], ids=["scan", "index"])
def test_search_matches_inside_titles_services_label_names_and_values(
    client: TestClient, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, scan_first: int
) -> None:
    """The same answers whether the newest incidents are scanned or the trigram index
    is asked (``scan_first`` 1: every incident but the newest comes from the index)."""
    monkeypatch.setattr(incident_search, "SCAN_FIRST", scan_first)
    acme: TenantHandle = tenant_with_hook(runtime)
    labels = {"team": "Payments", "Zone": "ZÜRICH-1", "odd_key": "a%b_c\\d"}
    send(client, acme, alert("Checkout latency 100%_high", "checkout", 300, labels=labels))
    send(client, acme, alert("Disk full", "db-primary", 200, labels={"team": "storage"}))
    send(client, acme, alert("Queue backlog", "queue", 100, labels={"owner": "ops-team"}))
    checkout, db, queue = sorted(incidents(client, acme), key=lambda i: i["title"])
    assert ids(client, acme, "latency 100%") == [checkout["id"]]  # title
    assert ids(client, acme, "primary") == [db["id"]]  # inside a service
    assert ids(client, acme, "zone") == [checkout["id"]]  # label name, any case
    assert ids(client, acme, "odd_k") == [checkout["id"]]
    assert ids(client, acme, "zürich") == [checkout["id"]]  # value, non-ASCII case
    assert ids(client, acme, "%b_c\\") == [checkout["id"]]  # wildcards taken literally
    assert ids(client, acme, "a_b") == []
    assert ids(client, acme, "team") == [queue["id"], db["id"], checkout["id"]]
    assert ids(client, acme, "team", limit="1") == [queue["id"]]
    page = get(client, acme, "/v1/incidents?" + query(q="team", limit="1"))
    after = get(client, acme, f"/v1/incidents?{query(q='team')}&cursor={page['next_cursor']}")
    assert [i["id"] for i in after["items"]] == [db["id"], checkout["id"]]
    assert ids(client, acme, "team", severity="critical") == []
    assert ids(client, acme, "nowhere") == []
    assert ids(client, acme, "payments\x1fzone") == []  # never across terms
    other = tenant_with_hook(runtime, "other")
    assert ids(client, other, "team") == []

    # Grown by a later alert, merged, split: the documents follow.
    send(client, acme, alert("Queue backlog", "queue", 99, labels={"owner": "platform"}))
    assert ids(client, acme, "platform") == [queue["id"]]
    post(client, acme, f"/v1/incidents/{checkout['id']}/merge", {"into": db["id"]})
    assert ids(client, acme, "zürich") == [db["id"]]
    assert ids(client, acme, "checkout") == [db["id"]]
    detail = get(client, acme, f"/v1/incidents/{db['id']}")
    moving = [a["id"] for a in detail["alerts"] if a["service"] == "checkout"]
    made = post(client, acme, f"/v1/incidents/{db['id']}/split", {"alert_ids": moving}, 201)
    assert ids(client, acme, "zürich") == [made["id"]]
    assert ids(client, acme, "storage") == [db["id"]]
    assert ids(client, acme, "checkout") == [made["id"]]


def test_split_moves_alerts_into_a_new_incident_recounting_both(
    client: TestClient, runtime: Runtime
) -> None:
    acme: TenantHandle = tenant_with_hook(runtime)
    send(
        client,
        acme,
        alert("Checkout 5xx", "checkout", 10, severity="critical"),
        alert("Checkout latency", "checkout", 9),
        alert("Checkout queue depth", "checkout", 8, severity="low"),
    )
    [whole] = incidents(client, acme)
    assert whole["alert_count"] == 3
    detail = get(client, acme, f"/v1/incidents/{whole['id']}")
    by_title = {a["title"]: a["id"] for a in detail["alerts"]}
    moving = [by_title["Checkout latency"], by_title["Checkout queue depth"]]

    made = post(
        client, acme, f"/v1/incidents/{whole['id']}/split", {"alert_ids": moving}, status=201
    )
    assert made["alert_count"] == 2 and made["severity"] == "high"
    assert made["title"] == "Checkout latency"
    left = get(client, acme, f"/v1/incidents/{whole['id']}")
    assert left["alert_count"] == 1 and left["severity"] == "critical"
    assert [a["title"] for a in left["alerts"]] == ["Checkout 5xx"]
    moved = get(client, acme, f"/v1/incidents/{made['id']}")
    assert sorted(a["id"] for a in moved["alerts"]) == sorted(moving)
    for one in (left, moved):
        assert [e["kind"] for e in one["timeline"] if e["kind"] != "decision"] == ["split"]
    # Not its alerts, or all of them: refused, nothing changes.
    for bad in ([by_title["Checkout 5xx"], moving[0]], [by_title["Checkout 5xx"]]):
        refused = client.post(
            f"/v1/incidents/{made['id']}/split", json={"alert_ids": bad}, headers=acme.auth
        )
        assert refused.status_code == 409, refused.text
    assert get(client, acme, f"/v1/incidents/{made['id']}")["alert_count"] == 2
    audit = get(client, acme, "/v1/audit")["items"]
    assert audit[0]["action"] == "incident.split"
