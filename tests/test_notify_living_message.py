"""An incident's living Slack message in a storm: announced as opened even when the
incident grew before it was posted; Slack answering 429 for a while delays its
updates, never freezes it; and a message whose delivery failed still shows the
incident's next change (its resolve above all). With the notifier on a clock the
test controls, against the Slack stand-in. Both modes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from dd0c_alert.pipeline.notifier import Notifier
from test_notify_followups import Setup, act, message_of, settle, setup
from test_notify_routing import Clock, fire, tenant_with

pytestmark = pytest.mark.both_modes
__all__ = ["setup"]  # the fixture, imported to be used here


def with_attempts(notifier: Notifier, attempts: int, clock: Clock) -> Notifier:
    """The fixture's notifier with fewer tries, so a test reaches the limit quickly."""
    config = replace(notifier._config, max_attempts=attempts)
    return Notifier(notifier._store, notifier._outbox, config, clock=clock)


def message_delivery(slack_setup: Setup, tenant_id: str, incident_id: str) -> dict[str, object]:
    runtime = slack_setup[0]
    [found] = [
        d
        for d in runtime.outbox.incident_deliveries(tenant_id, incident_id)
        if d["kind"] == "message"
    ]
    return found


def test_a_rate_limit_longer_than_the_tries_delays_updates_without_freezing_the_message(
    setup: Setup,
) -> None:
    """Slack's 429 says "slower", not "failed": a channel rate-limited for more calls
    than ``max_attempts`` used to fail its living message for good, which then showed
    its first state (open, one alert) forever, the resolve included."""
    runtime, client, slack, _, fixture_notifier, clock = setup
    notifier = with_attempts(fixture_notifier, 3, clock)
    tenant = tenant_with(runtime)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    settle(notifier)
    slack.script("chat.update", *["ratelimited:1"] * 5)
    fire(client, runtime, tenant, service="db", severity="high", fingerprint="b")
    for _ in range(8):  # each pass past the last Retry-After
        clock.offset += timedelta(seconds=2)
        settle(notifier)
    assert len(slack.calls_of("chat.update")) == 6  # five 429s, then the update
    assert "2 alerts" in message_of(slack, "#oncall", incident)["text"]
    assert message_delivery(setup, tenant.id, incident)["status"] == "delivered"


def test_a_failed_living_message_shows_the_incidents_next_change(setup: Setup) -> None:
    """A living message whose delivery ran out of tries (Slack down for a while) is
    tried again at the incident's next change: it must not say "open" after the
    incident resolved because of an outage that is over."""
    runtime, client, slack, _, fixture_notifier, clock = setup
    notifier = with_attempts(fixture_notifier, 2, clock)
    tenant = tenant_with(runtime)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    settle(notifier)
    slack.script("chat.update", "http_500")  # the last of its two tries
    act(client, tenant, incident, "ack")
    for _ in range(3):
        clock.offset += timedelta(seconds=5)
        settle(notifier)
    assert message_delivery(setup, tenant.id, incident)["status"] == "failed"
    act(client, tenant, incident, "resolve")  # Slack is back
    clock.offset += timedelta(seconds=5)
    settle(notifier)
    assert "Resolved" in message_of(slack, "#oncall", incident)["text"]
    assert message_delivery(setup, tenant.id, incident)["status"] == "delivered"


def test_an_incident_that_grew_before_its_first_post_is_announced_as_opened(
    setup: Setup,
) -> None:
    """In a storm an incident grows before its message is posted; the post carries the
    latest change's event, and its text (the phone's push notification) said
    "(updated)" for an incident nobody had heard of."""
    runtime, client, slack, _, notifier, _ = setup
    tenant = tenant_with(runtime)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    fire(client, runtime, tenant, service="db", severity="high", fingerprint="b")
    settle(notifier)
    [post] = [c for c in slack.calls_of("chat.postMessage") if not c.args.get("thread_ts")]
    assert "(opened)" in post.args["text"] and "2 alerts" in post.args["text"]
    assert incident in str(post.args["metadata"])
