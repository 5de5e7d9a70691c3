"""The notifier when Slack misbehaves in ways people and proxies cause: a living
message deleted by hand, answers that are not Slack's. Nothing is lost, nothing is
posted twice, and a channel is not stopped for a fault that is not the channel's.
With the notifier on a clock the test controls, against the Slack stand-in. Both
modes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from test_notify_followups import Setup, act, message_of, posts, settle, setup
from test_notify_routing import fire, tenant_with

pytestmark = pytest.mark.both_modes
__all__ = ["setup"]  # the fixture, imported to be used here


def stopped(slack_setup: Setup, tenant_id: str) -> list[str]:
    runtime = slack_setup[0]
    return [target for kind, target in runtime.outbox.stopped(tenant_id) if kind == "slack"]


def test_a_deleted_message_is_posted_again_and_the_channel_keeps_paging(setup: Setup) -> None:
    runtime, client, slack, _, notifier, clock = setup
    tenant = tenant_with(runtime)
    first = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    settle(notifier)
    gone = message_of(slack, "#oncall", first)
    slack.delete_message("#oncall", gone["ts"])  # someone tidied the channel
    act(client, tenant, first, "ack")
    settle(notifier)
    assert stopped(setup, tenant.id) == []
    assert posts(slack, first) == ["#oncall", "#oncall"]
    again = message_of(slack, "#oncall", first)
    assert "'action_id': 'ack'" not in str(again["blocks"])  # it shows the state now
    act(client, tenant, first, "resolve")  # the thread reply follows the new message
    clock.offset = timedelta(minutes=1)
    settle(notifier)
    assert slack.replies("#oncall", again["ts"])
    other = fire(client, runtime, tenant, service="web", severity="high", fingerprint="b")
    settle(notifier)
    assert posts(slack, other) == ["#oncall"]  # the channel still pages


@pytest.mark.parametrize("fault", ["malformed", "html_200"])
def test_an_answer_that_is_not_slacks_is_retried_without_a_second_message(
    setup: Setup, fault: str
) -> None:
    runtime, client, slack, _, notifier, clock = setup
    tenant = tenant_with(runtime)
    slack.script("chat.postMessage", fault)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="m")
    settle(notifier)
    clock.offset = timedelta(minutes=1)  # past the backoff
    settle(notifier)
    assert stopped(setup, tenant.id) == []
    assert len([m for m in slack.messages("#oncall") if incident in str(m["metadata"])]) == 1
    [delivery] = [
        d for d in runtime.outbox.incident_deliveries(tenant.id, incident) if d["kind"] == "message"
    ]
    assert delivery["status"] == "delivered"
    assert "unreadable answer" in str(delivery["tries"][0]["error"])


@pytest.mark.parametrize("code", ["invalid_blocks", "msg_too_long"])
def test_a_message_slack_refuses_is_posted_plainly_and_the_channel_keeps_paging(
    setup: Setup, code: str
) -> None:
    """Slack's refusal of one message's blocks is about what the alerts made of it, not
    about the channel: the incident is still announced, with a plain message that
    keeps the buttons, and the next incident is posted as usual."""
    runtime, client, slack, _, notifier, _ = setup
    tenant = tenant_with(runtime)
    slack.script("chat.postMessage", f"error:{code}")
    odd = fire(client, runtime, tenant, service="db", severity="high", fingerprint="odd")
    settle(notifier)
    assert stopped(setup, tenant.id) == []
    plain = message_of(slack, "#oncall", odd)
    assert [b["type"] for b in plain["blocks"]] == ["section", "actions", "context"]
    assert "[HIGH] x (opened)" in plain["blocks"][0]["text"]["text"]
    assert "'action_id': 'ack'" in str(plain["blocks"])
    slack.script("chat.update", f"error:{code}")  # refused again on the update
    act(client, tenant, odd, "ack")
    settle(notifier)
    assert "Acknowledged" in message_of(slack, "#oncall", odd)["blocks"][0]["text"]["text"]
    other = fire(client, runtime, tenant, service="web", severity="high", fingerprint="b")
    settle(notifier)
    assert posts(slack, other) == ["#oncall"]
    assert message_of(slack, "#oncall", other)["blocks"][0]["type"] == "header"


def test_a_message_refused_even_plainly_fails_alone_without_stopping_the_channel(
    setup: Setup,
) -> None:
    runtime, client, slack, _, notifier, _ = setup
    tenant = tenant_with(runtime)
    slack.script("chat.postMessage", "error:invalid_blocks", "error:invalid_blocks")
    odd = fire(client, runtime, tenant, service="db", severity="high", fingerprint="odd")
    settle(notifier)
    [delivery] = [
        d for d in runtime.outbox.incident_deliveries(tenant.id, odd) if d["kind"] == "message"
    ]
    assert delivery["status"] == "failed"
    assert "invalid_blocks" in str(delivery["tries"][-1]["error"])
    assert stopped(setup, tenant.id) == []
    other = fire(client, runtime, tenant, service="web", severity="high", fingerprint="b")
    settle(notifier)
    assert posts(slack, other) == ["#oncall"]
