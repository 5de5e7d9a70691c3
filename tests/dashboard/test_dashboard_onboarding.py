"""The set-up guide: sign-up lands on it; a source, its URL and snippet, a test alert
through the real webhook path that becomes a correlated incident, Slack or email, the
time to the first incident; CSRF and roles."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import orjson
import pytest
from dashboard_helpers import add_user, csrf, log_in, post_forms, sign_up
from fastapi.testclient import TestClient

from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.providers import PROVIDERS
from dd0c_alert.storage.ports import IncidentFilter
from dd0c_alert.web.dashboard.onboarding import SOURCES
from stand_ins.slack_api import SlackStandIn

TOKEN = "xoxb-test-token"
FORMS = ("/onboarding/integration", "/onboarding/test", "/onboarding/slack", "/onboarding/email")


@pytest.fixture(scope="module")
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn((TOKEN,)) as stand_in:
        yield stand_in


@pytest.fixture
def settings(settings: Settings, slack: SlackStandIn) -> Settings:  # extends the root's
    return settings.model_copy(update={"signup_enabled": True, "slack_api_url": slack.base_url})


def _audit(runtime: Runtime, tenant_id: str) -> list[str]:
    found = runtime.store.product().list_audit(
        tenant_id, action=None, actor=None, since=None, until=None, limit=50, cursor=None
    )
    return [e["action"] for e in found.items]


def _create(client: TestClient, provider: str = "custom") -> tuple[str, str]:
    """Create an integration through the guide; its id and the page."""
    made = client.post(
        "/onboarding/integration", data={"csrf_token": csrf(client), "provider": provider}
    )
    assert made.status_code == 201, made.text
    found = re.search(r'name="integration" value="([^"]+)"', made.text)
    assert found
    return found.group(1), made.text


def test_the_guide_names_every_source_and_can_be_skipped(client: TestClient) -> None:
    sign_up(client)  # asserts the redirect to /onboarding
    html = client.get("/onboarding").text
    assert {s.provider for s in SOURCES} == set(PROVIDERS)
    for source in SOURCES:
        assert f'value="{source.provider}"' in html and source.name in html
    assert "Prometheus Alertmanager" in html and '<a href="/incidents">Skip for now</a>' in html
    assert post_forms(html)[:1] == ["/logout"] and "/onboarding/integration" in post_forms(html)
    assert '<a href="/onboarding">' in client.get("/settings").text  # reopened from there


def test_a_test_alert_becomes_an_incident_and_the_time_is_shown(
    client: TestClient, runtime: Runtime
) -> None:
    tenant_id = sign_up(client)
    integration, created = _create(client, "custom")
    assert f"/v1/wh/{tenant_id}/custom/{integration}" in created
    assert 'id="created-secret"' in created and "X-DD0C-Signature" in created  # the snippet
    assert 'data-copy="snippet"' in created
    assert 'id="created-secret"' not in client.get("/onboarding").text  # shown once
    sent = client.post(
        "/onboarding/test",
        data={"csrf_token": csrf(client), "integration": integration},
        follow_redirects=False,
    )
    assert sent.status_code == 303
    assert sent.headers["location"].startswith(f"/onboarding?integration={integration}&msg=sent")
    progress = ""
    deadline = time.monotonic() + 20
    while "time-to-first" not in progress and time.monotonic() < deadline:
        progress = client.get(f"/onboarding/progress?integration={integration}").text
        time.sleep(0.1)
    assert 'id="time-to-first"' in progress, progress
    assert "checkout latency high" in progress  # the newest incident from the source
    [incident] = runtime.store.list_incidents(tenant_id, IncidentFilter(), 10, None).items
    assert f'<a href="/incidents/{incident["id"]}">open it</a>' in progress
    steps = client.get("/v1/onboarding").json()["steps"]
    seconds = next(s for s in steps if s["step"] == "first_incident_correlated")["detail"]
    assert f"{seconds['seconds_from_first_alert']:.1f} s" in progress
    page = client.get(f"/onboarding?integration={integration}&msg=sent").text
    assert "Refresh" in page and 'data-poll="/onboarding/progress' in page
    assert _audit(runtime, tenant_id)[:2] == ["integration.test", "integration.create"]


def test_a_deploy_source_says_it_opens_no_incident(client: TestClient) -> None:
    sign_up(client)
    _, created = _create(client, "github")
    assert "This source sends deploys" in created and "GitHub deployments" in created


def test_slack_and_email_connect_from_the_guide(
    client: TestClient, runtime: Runtime, slack: SlackStandIn
) -> None:
    tenant_id = sign_up(client)
    manifest = client.get("/onboarding/slack-manifest.json")
    assert manifest.headers["content-disposition"].startswith("attachment")
    interactivity = orjson.loads(manifest.content)["settings"]["interactivity"]
    assert interactivity["request_url"].endswith("/v1/slack/interactions")
    bad = client.post(
        "/onboarding/slack",
        data={"csrf_token": csrf(client), "bot_token": TOKEN, "signing_secret": "s"}
        | {"default_channel": "not a channel"},
    )
    assert bad.status_code == 422 and "Slack:" in bad.text
    done = client.post(
        "/onboarding/slack",
        data={"csrf_token": csrf(client), "bot_token": TOKEN, "signing_secret": "s"}
        | {"default_channel": "#oncall"},
    )
    assert "Slack connected" in done.text and "#oncall" in done.text
    assert TOKEN not in done.text
    assert any(c.method == "auth.test" for c in slack.calls)
    wrong = client.post("/onboarding/email", data={"csrf_token": csrf(client), "email": "nope"})
    assert wrong.status_code == 422 and "not an email address" in wrong.text
    mailed = client.post(
        "/onboarding/email", data={"csrf_token": csrf(client), "email": "oncall@example.com"}
    )
    assert "Email connected" in mailed.text and "oncall@example.com" in mailed.text
    [route] = runtime.notify_settings.list_routes(tenant_id)
    assert route["destinations"] == [{"type": "email", "to": ["oncall@example.com"]}]
    # A second address gets a route of its own, under a name no route has.
    client.post("/onboarding/email", data={"csrf_token": csrf(client), "email": "b@example.com"})
    names = [r["name"] for r in runtime.notify_settings.list_routes(tenant_id)]
    assert names == ["email (set-up guide)", "email (set-up guide) 2"]
    assert {"slack.configure", "route.create"} <= set(_audit(runtime, tenant_id))


def test_the_guide_refuses_forms_without_the_token(client: TestClient) -> None:
    sign_up(client)
    for path in FORMS:
        assert client.post(path, data={"provider": "custom"}).status_code == 403, path
        foreign = client.post(
            path, data={"csrf_token": csrf(client)}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403, path


def test_a_viewer_sees_the_progress_but_no_forms(client: TestClient, runtime: Runtime) -> None:
    tenant_id = sign_up(client)
    integration, _ = _create(client)
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    log_in(client, "viewer@example.com")
    html = client.get("/onboarding").text
    assert post_forms(html) == ["/logout"]
    assert "cannot change notifications" in html and "Progress" in html
    token = csrf(client)
    for path in FORMS:
        answer = client.post(path, data={"csrf_token": token, "integration": integration})
        assert answer.status_code == 403, path
