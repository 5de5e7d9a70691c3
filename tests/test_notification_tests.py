"""Test notifications end to end: ``POST /v1/routes/{id}/test`` and ``POST /v1/slack/test``
through the real senders, against the local Slack API, SMTP server and webhook receiver.

A test sends one marked message per destination and answers what each said: no
incident, no delivery, a failure reported as a result (never a 500), limited to one
per route every 10 s, for ``config:write`` only, audited, and never another tenant's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from stand_ins.smtp import SmtpStandIn
from stand_ins.webhook_receiver import WebhookReceiver

pytestmark = pytest.mark.both_modes

TOKEN = "xoxb-trial-token"
HOOK_SECRET = "whsec-trial-secret-0123456789"
PATH_TOKEN = "path-token-abcdef"
TEXT = "Test notification from dd0c/alert: route payments works"


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(tokens=(TOKEN,)) as stand_in:
        yield stand_in


@pytest.fixture
def smtp() -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as stand_in:
        yield stand_in


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as stand_in:
        yield stand_in


def _runtime(settings: Settings, slack: SlackStandIn, smtp: SmtpStandIn | None) -> Runtime:
    update: dict[str, Any] = {"slack_api_url": slack.base_url, "smtp_tls": "none"}
    if smtp is not None:
        update |= {"smtp_host": smtp.host, "smtp_port": smtp.port}
    return build_runtime(settings.model_copy(update=update), roles=frozenset({"ingest", "api"}))


@pytest.fixture
def env(
    settings: Settings, slack: SlackStandIn, smtp: SmtpStandIn
) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = _runtime(settings, slack, smtp)
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def _tenant(runtime: Runtime, name: str = "acme", scope: str = "admin") -> TenantHandle:
    created = runtime.store.create_tenant(name)
    key, _ = runtime.store.accounts().create_api_key(created.id, f"k-{scope}", scope)
    return TenantHandle(created.id, key, runtime)


def _slack_on(client: TestClient, tenant: TenantHandle, channel: str = "#oncall") -> None:
    body = {"bot_token": TOKEN, "signing_secret": "sign-0123", "default_channel": channel}
    assert client.put("/v1/slack", json=body, headers=tenant.auth).status_code == 200


def _route(
    client: TestClient,
    tenant: TenantHandle,
    destinations: list[dict[str, Any]],
    name: str = "payments",
) -> str:
    body = {"name": name, "matchers": '{service="checkout"}', "destinations": destinations}
    response = client.post("/v1/routes", json=body, headers=tenant.auth)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _test(client: TestClient, tenant: TenantHandle, route_id: str) -> Any:
    return client.post(f"/v1/routes/{route_id}/test", headers=tenant.auth)


def _verify(secret: str, request: Any) -> bool:
    signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}."
    digest = hmac.new(secret.encode(), signed.encode() + request.body, hashlib.sha256).digest()
    return bool(request.headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode())


def test_each_destination_gets_one_marked_message(
    env: tuple[TestClient, Runtime],
    slack: SlackStandIn,
    smtp: SmtpStandIn,
    receiver: WebhookReceiver,
) -> None:
    client, runtime = env
    acme = _tenant(runtime)
    _slack_on(client, acme)
    hook = f"{receiver.url}/{PATH_TOKEN}"
    route_id = _route(
        client,
        acme,
        [
            {"type": "slack", "channel": "#payments"},
            {"type": "email", "to": ["oncall@example.com"]},
            {"type": "webhook", "url": hook, "secret": HOOK_SECRET},
        ],
    )
    response = _test(client, acme, route_id)
    assert response.status_code == 200, response.text
    port = receiver.url.split(":")[2].split("/")[0]
    assert response.json() == {
        "items": [
            {"type": "slack", "destination": "#payments", "ok": True, "error": None},
            {"type": "email", "destination": "oncall@example.com", "ok": True, "error": None},
            {
                "type": "webhook",
                "destination": f"http://127.0.0.1:{port}/…",
                "ok": True,
                "error": None,
            },
        ]
    }
    for secret in (HOOK_SECRET, PATH_TOKEN, TOKEN):
        assert secret not in response.text
    [posted] = slack.messages("#payments")
    assert posted["text"] == TEXT
    [mail] = smtp.messages
    assert mail["To"] == "oncall@example.com" and "test" in mail["Subject"]
    assert TEXT in mail.get_content()
    [request] = receiver.requests
    assert request.path == f"/hook/{PATH_TOKEN}"
    assert _verify(HOOK_SECRET, request)
    event = json.loads(request.body)
    assert event["type"] == "test" and event["text"] == TEXT and "incident" not in event
    # A test is no incident and no delivery: nothing to page, nothing to retry.
    assert client.get("/v1/incidents", headers=acme.auth).json()["items"] == []
    assert client.get("/v1/deliveries", headers=acme.auth).json()["items"] == []


def test_a_failing_destination_is_a_result_not_an_error(
    settings: Settings, slack: SlackStandIn, receiver: WebhookReceiver
) -> None:
    runtime = _runtime(settings, slack, smtp=None)  # no DD0C_SMTP_HOST
    with TestClient(create_app(runtime)) as client:
        acme = _tenant(runtime)
        route_id = _route(
            client,
            acme,
            [
                {"type": "slack", "channel": "#oncall"},  # Slack not set up yet
                {"type": "email", "to": ["oncall@example.com"]},
                {"type": "webhook", "url": f"{receiver.url}/{PATH_TOKEN}", "secret": HOOK_SECRET},
            ],
        )
        receiver.script("500")
        response = _test(client, acme, route_id)
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["type"], i["ok"]) for i in items] == [
        ("slack", False),
        ("email", False),
        ("webhook", False),
    ]
    assert [i["error"] for i in items] == [
        "Slack is not configured for this tenant",
        "no SMTP server is configured (DD0C_SMTP_HOST)",
        "HTTP 500",
    ]
    assert PATH_TOKEN not in response.text


def test_slack_refusal_and_unreachable_webhook_are_worded_as_deliveries_say(
    env: tuple[TestClient, Runtime], slack: SlackStandIn
) -> None:
    client, runtime = env
    acme = _tenant(runtime)
    _slack_on(client, acme)
    slack.auto_create_channels = False
    route_id = _route(
        client,
        acme,
        [
            {"type": "slack", "channel": "#gone"},
            {"type": "webhook", "url": "http://127.0.0.1:9/nothing", "secret": HOOK_SECRET},
        ],
    )
    items = _test(client, acme, route_id).json()["items"]
    assert items[0]["error"] == "chat.postMessage: channel_not_found"
    assert items[1] == {
        "type": "webhook",
        "destination": "http://127.0.0.1:9/…",
        "ok": False,
        "error": "connection failed (ConnectError)",
    }


def test_one_test_per_route_every_ten_seconds(
    env: tuple[TestClient, Runtime], slack: SlackStandIn
) -> None:
    client, runtime = env
    acme = _tenant(runtime)
    _slack_on(client, acme)
    first = _route(client, acme, [{"type": "slack", "channel": "#a"}])
    second = _route(client, acme, [{"type": "slack", "channel": "#b"}], "payments 2")
    assert _test(client, acme, first).status_code == 200
    again = _test(client, acme, first)
    assert again.status_code == 429
    assert again.json()["error"] == "rate_limited"
    assert 1 <= int(again.headers["Retry-After"]) <= 10
    assert _test(client, acme, second).status_code == 200  # another route is not held up
    assert len(slack.messages("#a")) == 1
    assert client.post("/v1/slack/test", headers=acme.auth).status_code == 200
    assert client.post("/v1/slack/test", headers=acme.auth).status_code == 429
    assert len(slack.messages("#oncall")) == 1


def test_needs_config_write_and_is_audited(
    env: tuple[TestClient, Runtime], slack: SlackStandIn
) -> None:
    client, runtime = env
    acme = _tenant(runtime)
    _slack_on(client, acme)
    route_id = _route(client, acme, [{"type": "slack", "channel": "#oncall"}])
    key, _ = runtime.store.accounts().create_api_key(acme.id, "reader", "read")
    reader = {"Authorization": f"Bearer {key}"}
    assert client.post(f"/v1/routes/{route_id}/test", headers=reader).status_code == 403
    assert client.post("/v1/slack/test", headers=reader).status_code == 403
    assert slack.messages("#oncall") == []
    assert _test(client, acme, route_id).status_code == 200
    assert client.post("/v1/slack/test", headers=acme.auth).status_code == 200
    entries = client.get("/v1/audit?limit=100", headers=acme.auth).json()["items"]
    tested = {e["action"]: e for e in entries if e["action"].endswith(".test")}
    assert tested["route.test"]["target_id"] == route_id
    assert tested["route.test"]["detail"]["results"] == [
        {"type": "slack", "destination": "#oncall", "ok": True}
    ]
    assert tested["slack.test"]["detail"]["results"][0]["ok"] is True


def test_another_tenants_route_is_not_found(
    env: tuple[TestClient, Runtime], slack: SlackStandIn
) -> None:
    client, runtime = env
    acme, other = _tenant(runtime), _tenant(runtime, "other")
    _slack_on(client, acme)
    route_id = _route(client, acme, [{"type": "slack", "channel": "#oncall"}])
    response = client.post(f"/v1/routes/{route_id}/test", headers=other.auth)
    assert response.status_code == 404
    assert client.post("/v1/routes/nope/test", headers=acme.auth).status_code == 404
    assert slack.messages("#oncall") == []


def test_slack_test_needs_slack_set_up(env: tuple[TestClient, Runtime]) -> None:
    client, runtime = env
    acme = _tenant(runtime)
    response = client.post("/v1/slack/test", headers=acme.auth)
    assert response.status_code == 409
    assert "PUT /v1/slack" in response.json()["detail"]


def test_openapi_describes_the_answers(env: tuple[TestClient, Runtime]) -> None:
    client, _ = env
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/routes/{route_id}/test", "/v1/slack/test"):
        responses = paths[path]["post"]["responses"]
        assert {"200", "403", "429"} <= set(responses)
        schema = responses["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/NotificationTestResults"}
