"""Slack end to end: per-tenant settings through the API (checked against the Slack
stand-in's ``auth.test``), and the two endpoints Slack calls — button interactions and
the ``/dd0c`` command — signed here by hand with Slack's v0 scheme.

Incidents come from signed webhooks through the real worker. The runtime has no
notifier role, so only what these endpoints do changes the incidents.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from conftest import BACKEND, TenantHandle
from dd0c_alert.app import build_runtime
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from test_incidents_api import ago, alert, send, tenant_with_hook

pytestmark = pytest.mark.both_modes

TOKEN = "xoxb-test-token"
SIGNING = "acme-signing-secret-0123"
OTHER_SIGNING = "other-signing-secret-4567"
TEAM = "T00000001"  # what the stand-in's auth.test answers
USER = {"id": "U0JANE", "username": "jane", "name": "jane", "team_id": TEAM}


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(tokens=(TOKEN,)) as stand_in:
        yield stand_in


def _runtime(settings: Settings, slack_api_url: str) -> Runtime:
    return build_runtime(
        settings.model_copy(update={"slack_api_url": slack_api_url}),
        roles=frozenset({"ingest", "correlate", "api"}),
    )


@pytest.fixture
def env(settings: Settings, slack: SlackStandIn) -> Iterator[tuple[TestClient, Runtime]]:
    runtime = _runtime(settings, slack.base_url)
    with TestClient(create_app(runtime)) as client:
        yield client, runtime


def configure(
    client: TestClient, tenant: TenantHandle, signing: str = SIGNING, status: int = 200, **over: str
) -> Any:
    body = {"bot_token": TOKEN, "signing_secret": signing, "default_channel": "#oncall", **over}
    response = client.put("/v1/slack", json=body, headers=tenant.auth)
    assert response.status_code == status, response.text
    for secret in (TOKEN, signing):
        assert secret not in response.text
    return response.json()


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def trigger_id() -> str:
    """Slack gives every interaction and command its own ``trigger_id`` (and each
    action an ``action_ts``), so no two real requests have the same body."""
    return f"{time.time_ns()}.{next(_TRIGGERS)}.abcdef"


_TRIGGERS = itertools.count(1)


def click_body(action_id: str, incident_id: str, team: str = TEAM) -> bytes:
    trigger = trigger_id()
    payload = {
        "type": "block_actions",
        "team": {"id": team, "domain": "acme"},
        "user": USER,
        "trigger_id": trigger,
        "actions": [
            {
                "action_id": action_id,
                "value": incident_id,
                "type": "button",
                "action_ts": trigger.split(".", 1)[0],
            }
        ],
        "response_url": "https://hooks.slack.com/actions/T/1/x",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(
    client: TestClient,
    action_id: str,
    incident_id: str,
    secret: str = SIGNING,
    status: int = 200,
    **sign: Any,
) -> Any:
    body = click_body(action_id, incident_id)
    response = client.post(
        "/v1/slack/interactions", content=body, headers=signed_headers(secret, body, **sign)
    )
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def command(client: TestClient, text: str, secret: str = SIGNING, status: int = 200) -> Any:
    body = urlencode(
        {
            "command": "/dd0c",
            "text": text,
            "team_id": TEAM,
            "user_id": "U0JANE",
            "user_name": "jane",
            "response_url": "https://hooks.slack.com/commands/T/1/x",
            "trigger_id": trigger_id(),
        }
    ).encode()
    response = client.post("/v1/slack/commands", content=body, headers=signed_headers(secret, body))
    assert response.status_code == status, response.text
    return response.json()


def incident(client: TestClient, tenant: TenantHandle, incident_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/incidents/{incident_id}", headers=tenant.auth)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def open_incident(
    client: TestClient,
    tenant: TenantHandle,
    title: str = "Checkout down",
    service: str = "checkout",
    severity: str = "critical",
) -> str:
    send(client, tenant, alert(title, service, 1, severity=severity))
    listed = client.get("/v1/incidents?status=open", headers=tenant.auth).json()["items"]
    found = next(i for i in listed if i["title"] == title)
    incident_id: str = found["id"]
    return incident_id


@pytest.fixture
def acme(env: tuple[TestClient, Runtime]) -> TenantHandle:
    client, runtime = env
    handle = tenant_with_hook(runtime)
    configure(client, handle)
    return handle


# --- settings ---------------------------------------------------------------------------


def test_settings_round_trip_without_secrets(env: tuple[TestClient, Runtime]) -> None:
    client, runtime = env
    handle = tenant_with_hook(runtime)
    empty = client.get("/v1/slack", headers=handle.auth).json()
    assert empty == {
        "configured": False,
        "default_channel": None,
        "team_id": None,
        "bot_token": None,
        "signing_secret": None,
    }
    saved = configure(client, handle)
    assert saved == {
        "configured": True,
        "default_channel": "#oncall",
        "team_id": TEAM,
        "bot_token": "set",
        "signing_secret": "set",
        "token_check": "ok",
    }
    shown = client.get("/v1/slack", headers=handle.auth)
    assert TOKEN not in shown.text and SIGNING not in shown.text
    assert shown.json() == {k: v for k, v in saved.items() if k != "token_check"}
    stored = runtime.notify_settings.slack(handle.id)
    assert stored is not None and stored.signing_secret == SIGNING
    assert client.put("/v1/slack", json={"bot_token": TOKEN}).status_code == 401


@pytest.mark.parametrize("channel", ["oncall", "#On Call", "#" + "x" * 81, "C12", "@jane", ""])
def test_a_malformed_default_channel_is_refused(
    env: tuple[TestClient, Runtime], channel: str
) -> None:
    client, runtime = env
    handle = tenant_with_hook(runtime)
    refused = configure(client, handle, status=422, default_channel=channel)
    assert refused["error"] == "invalid_request"
    assert runtime.notify_settings.slack(handle.id) is None


def test_a_channel_id_is_accepted(env: tuple[TestClient, Runtime]) -> None:
    client, runtime = env
    saved = configure(client, tenant_with_hook(runtime), default_channel="C0123ABCD")
    assert saved["default_channel"] == "C0123ABCD"


def test_a_token_slack_refuses_is_not_stored(env: tuple[TestClient, Runtime]) -> None:
    client, runtime = env
    handle = tenant_with_hook(runtime)
    refused = configure(client, handle, status=422, bot_token="xoxb-revoked")
    assert "invalid_auth" in refused["detail"]
    assert "xoxb-revoked" not in json.dumps(refused)
    assert runtime.notify_settings.slack(handle.id) is None


def test_an_unreachable_slack_does_not_stop_configuration(settings: Settings) -> None:
    runtime = _runtime(settings, "http://127.0.0.1:9/api/")  # nothing listens on port 9
    with TestClient(create_app(runtime)) as client:
        saved = configure(client, tenant_with_hook(runtime))
    assert saved["token_check"] == "unreachable"
    assert saved["configured"] is True and saved["team_id"] is None


# --- interactions -----------------------------------------------------------------------


def test_signed_clicks_ack_snooze_and_resolve(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)

    answer = click(client, "ack", incident_id)
    assert answer["response_type"] == "ephemeral"
    assert "Acknowledged" in answer["text"] and "slack:U0JANE (jane)" in answer["text"]
    shown = incident(client, acme, incident_id)
    assert shown["status"] == "acknowledged" and shown["acknowledged_at"]
    [acked] = [e for e in shown["timeline"] if e["kind"] == "ack"]
    assert acked["actor"] == "slack:U0JANE (jane)"  # the Slack user, on the timeline

    before = time.time()
    assert "Snoozed for 4 h" in click(client, "snooze_4h", incident_id)["text"]
    until = datetime.fromisoformat(incident(client, acme, incident_id)["snoozed_until"])
    assert abs(until.timestamp() - (before + 4 * 3600)) < 60

    assert "Resolved" in click(client, "resolve", incident_id)["text"]
    assert incident(client, acme, incident_id)["status"] == "resolved"
    # A button that no longer applies changes nothing and says why.
    assert "Nothing changed" in click(client, "ack", incident_id)["text"]
    assert incident(client, acme, incident_id)["status"] == "resolved"


def test_changes_made_from_slack_are_in_the_audit_log_by_slack_user(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    click(client, "ack", incident_id)
    click(client, "noise", incident_id)
    command(client, f"resolve {incident_id}")
    assert "Nothing changed" in click(client, "resolve", incident_id)["text"]
    response = client.get("/v1/audit", headers=acme.auth)
    assert response.status_code == 200, response.text
    entries = [e for e in response.json()["items"] if e["target_id"] == incident_id]
    assert [(e["action"], e["actor"]) for e in reversed(entries)] == [
        ("incident.ack", "slack:U0JANE (jane)"),
        ("incident.feedback", "slack:U0JANE (jane)"),
        ("incident.resolve", "slack:U0JANE (jane)"),  # the refused second resolve: none
    ]
    assert entries[1]["detail"] == {"via": "slack", "verdict": "noise"}


@pytest.mark.parametrize("action", ["snooze_1h", "snooze_24h"])
def test_snooze_lengths(env: tuple[TestClient, Runtime], acme: TenantHandle, action: str) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    before = time.time()
    click(client, action, incident_id)
    hours = {"snooze_1h": 1, "snooze_24h": 24}[action]
    until = datetime.fromisoformat(incident(client, acme, incident_id)["snoozed_until"])
    assert abs(until.timestamp() - (before + hours * 3600)) < 60


def _unchanged(client: TestClient, tenant: TenantHandle, incident_id: str) -> None:
    shown = incident(client, tenant, incident_id)
    assert shown["status"] == "open"
    assert shown["snoozed_until"] is None
    assert [e["kind"] for e in shown["timeline"]] == ["decision"]


def test_bad_signature_stale_or_missing_headers_are_401_and_change_nothing(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    wrong = click(client, "ack", incident_id, secret="not-the-secret", status=401)
    assert wrong["error"] == "signature_mismatch"
    stale = click(client, "ack", incident_id, status=401, timestamp=int(time.time()) - 301)
    assert stale["error"] == "timestamp_expired"
    future = click(client, "ack", incident_id, status=401, timestamp=int(time.time()) + 400)
    assert future["error"] == "timestamp_expired"

    body = click_body("resolve", incident_id)
    bare = client.post("/v1/slack/interactions", content=body)
    assert bare.status_code == 401 and bare.json()["error"] == "missing_signature"
    # The right signature over another body (a replayed signature) does not verify.
    tampered = client.post(
        "/v1/slack/interactions",
        content=click_body("resolve", incident_id),
        headers=signed_headers(SIGNING, click_body("ack", incident_id)),
    )
    assert tampered.status_code == 401
    # Signed right, but for a workspace no tenant is configured with.
    other_team = click_body("ack", incident_id, team="T0SOMEONE")
    response = client.post(
        "/v1/slack/interactions", content=other_team, headers=signed_headers(SIGNING, other_team)
    )
    assert response.status_code == 401 and response.json()["error"] == "signature_mismatch"
    _unchanged(client, acme, incident_id)


def test_another_tenants_incident_is_not_touched(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, runtime = env
    incident_id = open_incident(client, acme)
    other = tenant_with_hook(runtime, "other")
    configure(client, other, signing=OTHER_SIGNING)  # the same workspace, its own app
    for action in ("ack", "resolve", "snooze_1h", "noise"):
        answer = click(client, action, incident_id, secret=OTHER_SIGNING)
        assert answer["text"].startswith("No incident")
    assert "No incident" in command(client, f"ack {incident_id}", secret=OTHER_SIGNING)["text"]
    _unchanged(client, acme, incident_id)
    assert click(client, "ack", "does-not-exist")["text"].startswith("No incident")


def test_mute_similar_makes_a_suggestion_for_review_never_a_silence(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    critical = open_incident(client, acme)
    assert "critical incidents are never muted" in click(client, "mute_similar", critical)["text"]
    _unchanged(client, acme, critical)
    noisy = open_incident(client, acme, "Disk 91% full", "batch", severity="low")
    text = click(client, "mute_similar", noisy)["text"]
    assert "Suggested for review" in text
    suggestions = client.get("/v1/suggestions?status=open", headers=acme.auth).json()["items"]
    [made] = [s for s in suggestions if s["key"].startswith("requested:")]
    assert made["kind"] == "tune" and "slack:U0JANE" in made["title"]
    assert client.get("/v1/silences", headers=acme.auth).json()["items"] == []  # none made
    again = click(client, "mute_similar", noisy)["text"]  # a second click: the same one
    assert made["id"] in again
    assert click(client, "unknown_button", noisy)["text"].startswith("Unknown action")


def test_mute_similar_proposes_nothing_on_a_never_suppress_service(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    """Nothing on a never-suppress service is proposed for muting (README): the
    button made a 30-day mute suggestion for it all the same."""
    client, _ = env
    patched = client.patch(
        "/v1/settings", json={"never_suppress_services": ["Auth"]}, headers=acme.auth
    )
    assert patched.status_code == 200, patched.text
    flaky = open_incident(client, acme, "Health check flaky", "auth", severity="low")
    text = click(client, "mute_similar", flaky)["text"]
    assert "auth is on the never-suppress list" in text
    assert client.get("/v1/suggestions", headers=acme.auth).json()["items"] == []
    _unchanged(client, acme, flaky)


def test_other_interaction_types_get_an_empty_200(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    payload = {"type": "view_closed", "team": {"id": TEAM}, "user": USER}
    body = urlencode({"payload": json.dumps(payload)}).encode()
    response = client.post(
        "/v1/slack/interactions", content=body, headers=signed_headers(SIGNING, body)
    )
    assert response.status_code == 200 and response.content == b""


def test_noise_from_slack_reaches_the_next_incidents_noise_score(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    disk = {"title": "Disk almost full", "service": "db", "severity": "high", "fingerprint": "d1"}
    send(client, acme, {**disk, "started_at": ago(90)})
    send(client, acme, {**disk, "status": "resolved", "started_at": ago(90), "ended_at": ago(89)})
    [first] = client.get("/v1/incidents", headers=acme.auth).json()["items"]
    assert first["noise_score"] == 0

    answer = click(client, "noise", first["id"])
    assert "marked *noise*" in answer["text"] and "slack:U0JANE (jane)" in answer["text"]
    entries = [
        e for e in incident(client, acme, first["id"])["timeline"] if e["kind"] == "feedback"
    ]
    assert [e["detail"] for e in entries] == [{"verdict": "noise"}]

    send(client, acme, {**disk, "started_at": ago(0)})
    listed = client.get("/v1/incidents", headers=acme.auth).json()["items"]
    second = next(i for i in listed if i["id"] != first["id"])
    assert second["noise_score"] == 20
    assert second["noise_reasons"] == ["+20 marked noise once before"]


def test_useful_feedback_is_recorded(env: tuple[TestClient, Runtime], acme: TenantHandle) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    assert "marked *useful*" in click(client, "useful", incident_id)["text"]
    entries = [
        e for e in incident(client, acme, incident_id)["timeline"] if e["kind"] == "feedback"
    ]
    assert [e["detail"] for e in entries] == [{"verdict": "useful"}]


# --- slash commands ---------------------------------------------------------------------


def test_commands_list_status_ack_resolve_and_help(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    assert command(client, "list")["text"] == "No open incidents."
    first = open_incident(client, acme, "Checkout down", "checkout")
    second = open_incident(client, acme, "<!channel> Search slow", "search")

    listed = command(client, "list")
    assert listed["response_type"] == "ephemeral"
    assert first in listed["text"] and second in listed["text"]
    assert listed["text"].count("), 1 alert\n") + listed["text"].endswith("), 1 alert") == 2
    assert "<!channel>" not in listed["text"] and "&lt;!channel&gt;" in listed["text"]
    assert "Incidents*: 2 open, 0 acknowledged" in command(client, "status")["text"]

    assert "Acknowledged" in command(client, f"ack {first}")["text"]
    assert incident(client, acme, first)["status"] == "acknowledged"
    assert "Resolved" in command(client, f"resolve {second}")["text"]
    assert incident(client, acme, second)["status"] == "resolved"
    status = command(client, "status")["text"]
    assert "0 open, 1 acknowledged, 1 resolved" in status
    assert command(client, "list")["text"] == "No open incidents."

    for text in ("", "help", "ack", "delete everything", "list now"):
        assert command(client, text)["text"].startswith("Usage:")


def test_commands_must_be_signed(env: tuple[TestClient, Runtime], acme: TenantHandle) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    refused = command(client, f"ack {incident_id}", secret="wrong", status=401)
    assert refused["error"] == "signature_mismatch"
    _unchanged(client, acme, incident_id)


# --- replays ----------------------------------------------------------------------------


def _post_signed(client: TestClient, path: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(path, content=body, headers=headers)


def test_a_replayed_click_is_refused_and_changes_nothing(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    body = click_body("resolve", incident_id)
    captured = signed_headers(SIGNING, body)
    first = _post_signed(client, "/v1/slack/interactions", body, captured)
    assert first.status_code == 200 and "Resolved" in first.json()["text"]
    reopened = client.post(f"/v1/incidents/{incident_id}/reopen", headers=acme.auth)
    assert reopened.status_code == 200, reopened.text

    replay = _post_signed(client, "/v1/slack/interactions", body, captured)
    assert replay.status_code == 401
    assert replay.json()["error"] == "replayed"
    assert incident(client, acme, incident_id)["status"] == "open"


def test_slacks_own_retry_of_a_used_request_gets_200_and_is_not_applied_again(
    env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    """Slack retries when the first answer took over 3 s: that click did happen, so the
    person sees no error, and what it did is not done a second time."""
    client, _ = env
    incident_id = open_incident(client, acme)
    body = click_body("resolve", incident_id)
    captured = signed_headers(SIGNING, body)
    assert _post_signed(client, "/v1/slack/interactions", body, captured).status_code == 200
    client.post(f"/v1/incidents/{incident_id}/reopen", headers=acme.auth)

    retry = {**captured, "X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    answer = _post_signed(client, "/v1/slack/interactions", body, retry)
    assert answer.status_code == 200, answer.text
    assert answer.json()["response_type"] == "ephemeral"
    assert "not applied twice" in answer.json()["text"]
    shown = incident(client, acme, incident_id)
    assert shown["status"] == "open"
    assert [e["kind"] for e in shown["timeline"]].count("resolve") == 1


def test_a_replayed_command_is_refused(env: tuple[TestClient, Runtime], acme: TenantHandle) -> None:
    client, _ = env
    incident_id = open_incident(client, acme)
    body = urlencode(
        {
            "command": "/dd0c",
            "text": f"resolve {incident_id}",
            "team_id": TEAM,
            "user_id": "U0JANE",
            "trigger_id": trigger_id(),
        }
    ).encode()
    captured = signed_headers(SIGNING, body)
    assert _post_signed(client, "/v1/slack/commands", body, captured).status_code == 200
    client.post(f"/v1/incidents/{incident_id}/reopen", headers=acme.auth)
    replay = _post_signed(client, "/v1/slack/commands", body, captured)
    assert replay.status_code == 401 and replay.json()["error"] == "replayed"
    assert incident(client, acme, incident_id)["status"] == "open"


@pytest.mark.skipif(BACKEND != "production", reason="processes share a Redis in production")
def test_a_replay_to_another_api_process_is_refused(
    settings: Settings, slack: SlackStandIn, env: tuple[TestClient, Runtime], acme: TenantHandle
) -> None:
    """Two ``api`` processes behind a balancer: the replay reaches the other one."""
    client, _ = env
    incident_id = open_incident(client, acme)
    body = click_body("resolve", incident_id)
    captured = signed_headers(SIGNING, body)
    assert _post_signed(client, "/v1/slack/interactions", body, captured).status_code == 200
    client.post(f"/v1/incidents/{incident_id}/reopen", headers=acme.auth)
    with TestClient(create_app(_runtime(settings, slack.base_url))) as other:
        replay = _post_signed(other, "/v1/slack/interactions", body, captured)
    assert replay.status_code == 401 and replay.json()["error"] == "replayed"
    assert incident(client, acme, incident_id)["status"] == "open"
