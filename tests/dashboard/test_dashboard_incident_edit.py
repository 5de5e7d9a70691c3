"""The incident page's note, merge and split forms: what they change, what they
refuse, the audit entries they write, and who may use them."""

from __future__ import annotations

import time
from typing import Any

import pytest
from dashboard_helpers import SECRET, add_user, csrf, log_in, post_alert, post_forms, sign_up
from fastapi.testclient import TestClient

from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import IncidentFilter


@pytest.fixture
def settings(settings: Settings) -> Settings:  # extends the root conftest's
    return settings.model_copy(update={"signup_enabled": True})


def _audit(runtime: Runtime, tenant_id: str) -> list[str]:
    items = (
        runtime.store.product()
        .list_audit(
            tenant_id, action=None, actor=None, since=None, until=None, limit=50, cursor=None
        )
        .items
    )
    return [f"{e['action']} {e['target_id']}" for e in items]


def _two_alerts(client: TestClient, runtime: Runtime, tenant_id: str) -> tuple[str, list[Any]]:
    """One incident holding two alerts of one service."""
    integration = runtime.store.create_integration(tenant_id, "custom", "c", SECRET).id
    incident = post_alert(client, runtime, tenant_id, integration, title="db down")
    post_alert(client, runtime, tenant_id, integration, title="db slow", fingerprint="slow")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        item = runtime.store.get_incident(tenant_id, incident)
        if item is not None and len(item["alerts"]) == 2:
            return incident, item["alerts"]
        time.sleep(0.05)
    raise AssertionError("the second alert never joined")


def test_a_note_lands_on_the_timeline_and_in_the_audit_log(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    page = client.get(f"/incidents/{incident}").text
    assert f"/incidents/{incident}/note" in post_forms(page)
    url = f"/incidents/{incident}/note"
    assert client.post(url, data={"text": "no token"}).status_code == 403
    empty = client.post(url, data={"csrf_token": csrf(client), "text": "  "})
    assert empty.status_code == 422 and "Note:" in empty.text
    done = client.post(url, data={"csrf_token": csrf(client), "text": "restarted <db-1>"})
    assert done.status_code == 200 and "Note added." in done.text
    assert "restarted &lt;db-1&gt;" in done.text  # on the timeline, escaped
    assert f"incident.note {incident}" in _audit(runtime, tenant_id)


def test_merge_into_an_open_incident_picked_from_the_list(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    integration = runtime.store.create_integration(tenant_id, "custom", "c", SECRET).id
    first = post_alert(client, runtime, tenant_id, integration, service="db")
    post_alert(client, runtime, tenant_id, integration, service="web", title="web 502")
    second = _newest_after(runtime, tenant_id, first)
    page = client.get(f"/incidents/{second}").text
    assert f'<option value="{first}">' in page  # offered as a target
    assert f'<option value="{second}">' not in page  # not itself
    url = f"/incidents/{second}/merge"
    unknown = client.post(url, data={"csrf_token": csrf(client), "into_id": "nope"})
    assert unknown.status_code == 422 and "no incident nope" in unknown.text
    itself = client.post(url, data={"csrf_token": csrf(client), "into": second})
    assert itself.status_code == 409 and "cannot be merged into itself" in itself.text
    done = client.post(
        url, data={"csrf_token": csrf(client), "into": first}, follow_redirects=False
    )
    assert done.headers["location"] == f"/incidents/{first}?msg=merged"
    target = client.get(done.headers["location"]).text
    assert "Merged: this incident now holds" in target and "web 502" in target
    merged = client.get(f"/incidents/{second}").text
    assert "This incident was merged into" in merged
    assert f"/incidents/{second}/merge" not in post_forms(merged)  # nothing left to act on
    assert f"incident.merge {second}" in _audit(runtime, tenant_id)


def _newest_after(runtime: Runtime, tenant_id: str, first: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        newest = runtime.store.list_incidents(tenant_id, IncidentFilter(), 1, None).items[0]["id"]
        if newest != first:
            return str(newest)
        time.sleep(0.05)
    raise AssertionError("no second incident")


def test_split_moves_the_ticked_alerts_into_a_new_incident(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    incident, alerts = _two_alerts(client, runtime, tenant_id)
    page = client.get(f"/incidents/{incident}").text
    assert 'form="split-form"' in page and f'value="{alerts[1]["id"]}"' in page
    url = f"/incidents/{incident}/split"
    token = csrf(client)
    none = client.post(url, data={"csrf_token": token})
    assert none.status_code == 422 and "tick the alerts" in none.text
    every = client.post(url, data={"csrf_token": token, "alert": [a["id"] for a in alerts]})
    assert every.status_code == 409 and "at least one alert" in every.text
    done = client.post(
        url, data={"csrf_token": token, "alert": alerts[1]["id"]}, follow_redirects=False
    )
    assert done.status_code == 303
    new = done.headers["location"].split("/incidents/")[1].split("?")[0]
    assert new != incident
    shown = client.get(done.headers["location"]).text
    assert "Split: these alerts are a new incident now." in shown
    assert "split out of" in shown and "db slow" in shown
    left = runtime.store.get_incident(tenant_id, incident)
    assert left is not None and [a["title"] for a in left["alerts"]] == [alerts[0]["title"]]
    assert f"incident.split {incident}" in _audit(runtime, tenant_id)


def test_a_viewer_gets_no_edit_forms_and_403(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    incident, alerts = _two_alerts(client, runtime, tenant_id)
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    assert log_in(client, "viewer@example.com").status_code == 303
    page = client.get(f"/incidents/{incident}").text
    assert post_forms(page) == ["/logout"]
    assert 'form="split-form"' not in page and "Add a note" not in page
    token = csrf(client)
    for action, data in (
        ("note", {"text": "hi"}),
        ("merge", {"into_id": incident}),
        ("split", {"alert": alerts[0]["id"]}),
    ):
        answer = client.post(f"/incidents/{incident}/{action}", data={"csrf_token": token, **data})
        assert answer.status_code == 403, action
    assert not [e for e in _audit(runtime, tenant_id) if e.startswith("incident.")]


def test_the_page_actions_are_audited_like_the_api(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    incident = post_alert(client, runtime, tenant_id)
    for action in ("ack", "noise"):
        client.post(f"/incidents/{incident}/{action}", data={"csrf_token": csrf(client)})
    found = _audit(runtime, tenant_id)
    assert f"incident.ack {incident}" in found and f"incident.feedback {incident}" in found
