"""The "Send test notification" buttons without a browser: on each route of the routes
page and in the set-up guide's notification step, through the REST endpoint's own
function, against the local Slack API, SMTP server and webhook receiver.

Each shows what every destination said, needs the CSRF token and ``config:write``,
keeps the pages' CSP (no inline script), and is audited.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from argon2 import PasswordHasher
from dashboard_helpers import add_user, csrf, log_in, post_forms, sign_up
from fastapi.testclient import TestClient

from conftest import backend_overrides
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web import passwords
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from stand_ins.smtp import SmtpStandIn
from stand_ins.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.both_modes

TOKEN = "xoxb-dashboard-trial"
HOOK_SECRET = "dashboard-hook-secret-42"
PATH_TOKEN = "dash-path-token-9876"


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
def stand_ins() -> Iterator[tuple[SlackStandIn, SmtpStandIn, WebhookReceiver]]:
    with (
        SlackStandIn(tokens=(TOKEN,)) as slack,
        SmtpStandIn() as smtp,
        WebhookReceiver() as receiver,
    ):
        yield slack, smtp, receiver


@pytest.fixture
def env(
    tmp_path: object, stand_ins: tuple[SlackStandIn, SmtpStandIn, WebhookReceiver]
) -> Iterator[tuple[TestClient, Runtime]]:
    slack, smtp, _ = stand_ins
    settings = Settings(
        data_dir=f"{tmp_path}/data",
        secret_key="",
        signup_enabled=True,
        slack_api_url=slack.base_url,
        smtp_host=smtp.host,
        smtp_port=smtp.port,
        smtp_tls="none",
    ).model_copy(update=backend_overrides())
    runtime = build_runtime(settings, roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def post(client: TestClient, path: str, **data: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf(client), **data})


def _no_inline_script(response: httpx.Response) -> None:
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "unsafe-inline" not in policy
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", response.text)
    assert " onclick=" not in response.text and " onsubmit=" not in response.text


def _connect_slack(client: TestClient, channel: str = "#incidents") -> httpx.Response:
    return post(
        client,
        "/onboarding/slack",
        bot_token=TOKEN,
        signing_secret="guide-signing-secret",
        default_channel=channel,
    )


def _results(html: str) -> list[str]:
    """Each result line: its badge and destination, tags stripped."""
    block = html.split('class="test-results"', 1)[1].split("</div>", 1)[0]
    return [re.sub(r"<[^>]+>", "", li).strip() for li in re.findall(r"<li>(.*?)</li>", block)]


def test_routes_page_button_sends_and_shows_each_result(
    env: tuple[TestClient, Runtime],
    stand_ins: tuple[SlackStandIn, SmtpStandIn, WebhookReceiver],
) -> None:
    client, runtime = env
    slack, smtp, receiver = stand_ins
    tenant_id = sign_up(client)
    _connect_slack(client)
    hook = f"{receiver.url}/{PATH_TOKEN}"
    made = post(
        client,
        "/settings/routes/new",
        name="payments",
        matchers='{service="checkout"}',
        destinations=f"slack #payments\nemail a@example.com\nwebhook {hook}",
        webhook_secret=HOOK_SECRET,
    )
    assert made.status_code == 200, made.text
    [route] = runtime.notify_settings.list_routes(tenant_id)
    page = client.get("/settings/routes")
    assert f"/settings/routes/{route['id']}/test" in post_forms(page.text)
    assert "Send test notification" in page.text
    _no_inline_script(page)

    refused = client.post(f"/settings/routes/{route['id']}/test", data={})
    assert refused.status_code == 403  # no CSRF token
    tested = post(client, f"/settings/routes/{route['id']}/test")
    assert tested.status_code == 200, tested.text
    _no_inline_script(tested)
    port = receiver.url.split(":")[2].split("/")[0]
    assert _results(tested.text) == [
        "sent slack #payments",
        "sent email a@example.com",
        f"sent webhook http://127.0.0.1:{port}/…",
    ]
    assert HOOK_SECRET not in tested.text
    # The page lists routes with their URL as configured; the result never adds more.
    assert len(slack.messages("#payments")) == 1
    assert len(smtp.messages) == 1 and len(receiver.requests) == 1

    again = post(client, f"/settings/routes/{route['id']}/test")
    assert again.status_code == 429
    assert "try again in" in again.text
    assert len(slack.messages("#payments")) == 1

    audit = client.get("/settings/audit").text
    assert "route.test" in audit


def test_a_failing_destination_is_shown_not_a_server_error(
    env: tuple[TestClient, Runtime],
) -> None:
    client, runtime = env
    tenant_id = sign_up(client)
    post(client, "/settings/routes/new", name="ops", destinations="slack #ops")  # no Slack yet
    [route] = runtime.notify_settings.list_routes(tenant_id)
    tested = post(client, f"/settings/routes/{route['id']}/test")
    assert tested.status_code == 200
    assert _results(tested.text) == ["failed slack #ops: Slack is not configured for this tenant"]


def test_a_viewer_has_no_button_and_is_refused(
    env: tuple[TestClient, Runtime], stand_ins: tuple[SlackStandIn, SmtpStandIn, WebhookReceiver]
) -> None:
    client, runtime = env
    tenant_id = sign_up(client)
    post(client, "/settings/routes/new", name="ops", destinations="slack #ops")
    [route] = runtime.notify_settings.list_routes(tenant_id)
    add_user(runtime, tenant_id, "viewer@example.com", "viewer")
    client.cookies.clear()
    assert log_in(client, "viewer@example.com").status_code == 303
    assert "Send test notification" not in client.get("/settings/routes").text
    assert post(client, f"/settings/routes/{route['id']}/test").status_code == 403
    assert post(client, "/onboarding/notify-test", target="slack").status_code == 403
    assert stand_ins[0].messages("#ops") == []


def test_setup_guide_tests_slack_and_email_once_connected(
    env: tuple[TestClient, Runtime],
    stand_ins: tuple[SlackStandIn, SmtpStandIn, WebhookReceiver],
) -> None:
    client, runtime = env
    slack, smtp, _ = stand_ins
    tenant_id = sign_up(client)
    guide = client.get("/onboarding")
    assert "/onboarding/notify-test#notify-h" not in post_forms(guide.text)  # nothing yet
    connected = _connect_slack(client)
    assert connected.status_code == 200, connected.text
    post(client, "/onboarding/email", email="oncall@example.com")
    guide = client.get("/onboarding")
    assert post_forms(guide.text).count("/onboarding/notify-test#notify-h") == 2
    _no_inline_script(guide)

    tested = post(client, "/onboarding/notify-test", target="slack")
    assert tested.status_code == 200, tested.text
    assert _results(tested.text) == ["sent slack #incidents"]
    [message] = slack.messages("#incidents")
    assert message["text"] == "Test notification from dd0c/alert: the default Slack channel works"

    [route] = runtime.notify_settings.list_routes(tenant_id)
    tested = post(client, "/onboarding/notify-test", target=route["id"])
    assert _results(tested.text) == ["sent email oncall@example.com"]
    [mail] = smtp.messages
    assert "route email (set-up guide) works" in mail.get_content()
    assert post(client, "/onboarding/notify-test", target="nope").status_code == 404
