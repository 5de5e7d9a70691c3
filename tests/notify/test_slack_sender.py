"""The Slack sender against the real Slack Web API stand-in on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from notify_samples import incident

from dd0c_alert.notify.base import DeliveryError
from dd0c_alert.notify.slack.manifest import slack_manifest
from dd0c_alert.notify.slack.render import render_incident
from dd0c_alert.notify.slack.sender import SlackSender
from dd0c_alert.notify.slack.signature import verify_slack_signature
from stand_ins.slack_api import SlackStandIn

TOKEN = "xoxb-test-token"
SINCE = datetime.now(UTC) - timedelta(minutes=10)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn((TOKEN,)) as server:
        yield server


def _sender(slack: SlackStandIn, token: str = TOKEN, timeout: float = 30.0) -> SlackSender:
    """A sender of the local stand-in. Its timeout is generous: on a loaded CI machine
    one of 250 posts once went unanswered for 2 s, and only the test of timeouts (which
    sets its own) is about them."""
    return SlackSender(token, base_url=slack.base_url, timeout=timeout)


def _post(sender: SlackSender, incident_id: str = "inc_1") -> Any:
    message = render_incident(incident(id=incident_id), "opened")
    return sender.post("#oncall", message.blocks, message.text, incident_id, "ten_acme")


def _error(coro: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(coro)
    return caught.value


def test_post_update_reply_and_find(slack: SlackStandIn) -> None:
    async def scenario() -> None:
        sender = _sender(slack)
        receipt = await _post(sender)
        assert receipt.channel_id == slack.channel_id("oncall")
        assert receipt.ref == f"{receipt.channel_id}:{receipt.ts}"
        later = render_incident(incident(id="inc_1", alert_count=40), "updated")
        await sender.update(receipt.channel_id, receipt.ts, later.blocks, later.text)
        await sender.reply(receipt.channel_id, receipt.ts, "escalated")
        assert await sender.find_existing("#oncall", "inc_1", SINCE) == (
            receipt.channel_id,
            receipt.ts,
        )
        assert await sender.find_existing("#oncall", "inc_other", SINCE) is None

    asyncio.run(scenario())
    [message] = slack.messages("#oncall")
    assert "40 alerts" in message["text"]
    assert message["metadata"] == {
        "event_type": "dd0c_incident",
        "event_payload": {"incident_id": "inc_1", "tenant_id": "ten_acme"},
    }
    assert [r["text"] for r in slack.replies("#oncall", message["ts"])] == ["escalated"]


def test_find_existing_pages_and_resolves_channel_names(slack: SlackStandIn) -> None:
    async def scenario() -> tuple[str, str] | None:
        poster = _sender(slack)
        for number in range(250):
            await _post(poster, f"inc_{number}")
        fresh = _sender(slack)  # knows no channel ids yet: goes through conversations.list
        return await fresh.find_existing("#oncall", "inc_3", SINCE)

    found = asyncio.run(scenario())
    assert found is not None and found[0] == slack.channel_id("oncall")
    assert len(slack.calls_of("conversations.history")) == 2
    assert slack.calls_of("conversations.history")[0].args["include_all_metadata"] in (
        "true",
        "1",
        True,
    )


def test_rate_limited_carries_retry_after(slack: SlackStandIn) -> None:
    slack.script("chat.postMessage", "ratelimited:7")
    error = _error(_post(_sender(slack)))
    assert (error.reason, error.retry, error.retry_after) == ("rate_limited", True, 7.0)
    assert slack.messages("#oncall") == []


def test_server_error_retries(slack: SlackStandIn) -> None:
    slack.script("chat.postMessage", "http_500")
    error = _error(_post(_sender(slack)))
    assert (error.reason, error.retry) == ("server", True)


@pytest.mark.parametrize("code", ["internal_error", "fatal_error", "service_unavailable"])
def test_slack_side_errors_retry(slack: SlackStandIn, code: str) -> None:
    slack.script("chat.postMessage", f"error:{code}")
    assert _error(_post(_sender(slack))).retry


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("channel_not_found", "client"),
        ("is_archived", "client"),
        ("not_in_channel", "client"),
        ("invalid_auth", "auth"),
        ("token_revoked", "auth"),
        ("account_inactive", "auth"),
        ("missing_scope", "auth"),
    ],
)
def test_permanent_errors(slack: SlackStandIn, code: str, reason: str) -> None:
    slack.script("chat.postMessage", f"error:{code}")
    error = _error(_post(_sender(slack)))
    assert (error.reason, error.permanent) == (reason, True)


def test_unknown_token_is_permanent_auth(slack: SlackStandIn) -> None:
    error = _error(_post(_sender(slack, token="xoxb-nobody")))
    assert (error.reason, error.permanent) == ("auth", True)


def test_accepted_then_dropped_post_is_found_not_reposted(slack: SlackStandIn) -> None:
    slack.script("chat.postMessage", "accept_then_drop")

    async def scenario() -> tuple[str, str] | None:
        sender = _sender(slack)
        with pytest.raises(DeliveryError) as caught:
            await _post(sender)
        assert (caught.value.reason, caught.value.retry) == ("unknown_outcome", True)
        return await sender.find_existing("#oncall", "inc_1", SINCE)

    found = asyncio.run(scenario())
    [message] = slack.messages("#oncall")
    assert found == (slack.channel_id("oncall"), message["ts"])


def test_hanging_post_is_an_unknown_outcome_and_update_a_timeout(slack: SlackStandIn) -> None:
    slack.script("chat.postMessage", "hang:5")
    slack.script("chat.update", "hang:5")
    sender = _sender(slack, timeout=0.5)
    assert _error(_post(sender)).reason == "unknown_outcome"
    error = _error(sender.update(slack.add_channel("oncall"), "1.0", [], "x"))
    assert (error.reason, error.retry) == ("timeout", True)


def test_unreachable_slack_retries() -> None:
    with SlackStandIn() as gone:
        url = gone.base_url
    error = _error(SlackSender(TOKEN, base_url=url, timeout=1).auth_test())
    assert (error.reason, error.retry) == ("server", True)


def test_errors_never_carry_the_token(slack: SlackStandIn) -> None:
    secret = "xoxb-very-secret-token-123"
    for fault in ("ratelimited", "http_500", "accept_then_drop", "error:invalid_auth"):
        slack.script("chat.postMessage", fault)
        error = _error(_post(_sender(slack, token=secret)))
        assert secret not in str(error) and secret not in repr(error.args)
        assert error.__cause__ is None or secret not in str(error.__cause__)


def _sign(body: bytes, timestamp: str, secret: str) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("timestamp", "signature_for", "now", "ok"),
    [
        ("1700000000", "1700000000", 1700000100.0, True),
        ("1700000000", "1700000001", 1700000000.0, False),  # signed another timestamp
        ("1700000000", "1700000000", 1700000301.0, False),  # stale
        ("1700000000", "1700000000", 1699999699.0, False),  # from the future
        ("17e8", "17e8", 1700000000.0, False),  # not a number
        ("-1", "-1", -1.0, False),
        ("", "", 0.0, False),
    ],
)
def test_verify_slack_signature(timestamp: str, signature_for: str, now: float, ok: bool) -> None:
    body = b"payload=%7B%22type%22%3A%22block_actions%22%7D"
    signature = _sign(body, signature_for, "shh")
    assert verify_slack_signature(body, timestamp, signature, "shh", now) is ok


def test_wrong_secret_or_body_fails() -> None:
    signature = _sign(b"a", "1700000000", "shh")
    assert not verify_slack_signature(b"a", "1700000000", signature, "other", 1700000000.0)
    assert not verify_slack_signature(b"b", "1700000000", signature, "shh", 1700000000.0)
    assert not verify_slack_signature(b"a", "1700000000", "v0=zz", "shh", 1700000000.0)


def test_manifest_points_at_this_server() -> None:
    manifest = slack_manifest("https://alerts.example.com/")
    assert manifest["settings"]["interactivity"]["request_url"] == (
        "https://alerts.example.com/v1/slack/interactions"
    )
    [command] = manifest["features"]["slash_commands"]
    assert (command["command"], command["url"]) == (
        "/dd0c",
        "https://alerts.example.com/v1/slack/commands",
    )
    assert {
        "chat:write",
        "chat:write.public",
        "channels:history",
        "groups:history",
        "commands",
    } <= set(manifest["oauth_config"]["scopes"]["bot"])
