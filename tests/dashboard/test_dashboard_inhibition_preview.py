"""The inhibition form's preview: which alerts of the last days the rule would have
held back, and while which source alert fired, replayed as the worker decides."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from dashboard_helpers import SECRET, add_user, csrf, log_in, sign_up
from fastapi.testclient import TestClient

from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import AlertFilter
from webhook_helpers import auth_headers

RULE = {"source": '{alertname="NodeDown"}', "target": '{severity=~"low|medium"}', "equal": "node"}


@pytest.fixture
def settings(settings: Settings) -> Settings:  # extends the root conftest's
    return settings.model_copy(update={"signup_enabled": True})


def _history(client: TestClient, runtime: Runtime, tenant_id: str) -> None:
    """Node n1 down from 60 to 30 minutes ago; alerts on n1 and n2 around it."""
    integration = runtime.store.create_integration(tenant_id, "custom", "c", SECRET).id
    now = datetime.now(UTC)

    def at(minutes: int) -> str:
        return (now - timedelta(minutes=minutes)).isoformat()

    alerts: list[dict[str, Any]] = [
        {"title": "n1 down", "service": "infra", "severity": "critical",
         "labels": {"alertname": "NodeDown", "node": "n1"},
         "started_at": at(60), "ended_at": at(30), "status": "resolved"},
        {"title": "api slow on n1", "service": "api", "severity": "low",
         "labels": {"node": "n1"}, "started_at": at(50)},
        {"title": "api slow on n2", "service": "api", "severity": "low",
         "labels": {"node": "n2"}, "started_at": at(45)},
        {"title": "cache slow on n1 later", "service": "cache", "severity": "medium",
         "labels": {"node": "n1"}, "started_at": at(10)},
    ]  # fmt: skip
    for alert in alerts:
        body = orjson.dumps(alert)
        headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
        url = f"/v1/wh/{tenant_id}/custom/{integration}"
        assert client.post(url, content=body, headers=headers).status_code == 202
    deadline = time.monotonic() + 20
    while len(runtime.store.list_alerts(tenant_id, AlertFilter(), 10, None).items) < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _preview(client: TestClient, **form: str) -> tuple[int, str]:
    answer = client.post("/settings/inhibitions/preview", data={"csrf_token": csrf(client), **form})
    return answer.status_code, answer.text


def test_the_preview_counts_what_fired_while_a_source_with_the_same_labels_did(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    _history(client, runtime, tenant_id)
    assert 'formaction="/settings/inhibitions/preview"' in client.get("/settings/inhibitions").text
    status, html = _preview(client, **RULE)
    assert status == 200
    # n1 during the outage only: not n2 (other node), not the cache alert after it ended.
    assert '<span class="big" id="preview-alerts">1</span> alert<' in html
    assert "api slow on n1" in html and "n1 down" in html
    assert "api slow on n2" not in html and "cache slow on n1 later" not in html
    assert 'value="{alertname=&#34;NodeDown&#34;}"' in html  # the form keeps what was typed
    status, html = _preview(client, **(RULE | {"equal": ""}))  # any node: n2 too
    assert '<span class="big" id="preview-alerts">2</span> alert' in html
    assert runtime.store.list_inhibitions(tenant_id) == []  # a preview saves nothing


def test_a_bad_rule_is_refused_next_to_its_field_and_the_preview_needs_a_writer(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    status, html = _preview(client, **(RULE | {"target": '{a=~"(?=x)"}'}))
    assert status == 422 and "RE2" in html and 'id="target-error"' in html
    assert client.post("/settings/inhibitions/preview", data=RULE).status_code == 403  # no token
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    log_in(client, "viewer@example.com")
    assert _preview(client, **RULE)[0] == 403
