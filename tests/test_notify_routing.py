"""Routing, quiet hours and escalation, end to end through the webhook and the worker,
with the notifier on a clock the test controls. Both modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.app import build_runtime, notify_config
from dd0c_alert.pipeline.notifier import Notifier
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from webhook_helpers import auth_headers, make_settings, new_tenant

pytestmark = pytest.mark.both_modes
TOKEN = "xoxb-routing-token"
SECRET = "routing-secret"


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock]]:
    with SlackStandIn((TOKEN,)) as slack:
        settings = make_settings(
            tmp_path / "d",
            slack_api_url=slack.base_url,
            notify_slack_per_second=100.0,
            notify_escalation_check_seconds=0.0,
        )
        runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
        clock = Clock()
        notifier = Notifier(runtime.store, runtime.outbox, notify_config(settings), clock=clock)
        with TestClient(create_app(runtime)) as client:
            yield runtime, client, slack, notifier, clock


def notify(notifier: Notifier) -> None:
    async def one_pass() -> None:
        await notifier.run_once()
        await notifier.drain()
        await notifier.run_once()  # replies wait for their thread's first message
        await notifier.drain()

    asyncio.run(one_pass())


def fire(client: TestClient, runtime: Runtime, tenant: TenantHandle, **alert: Any) -> str:
    integration = tenant.integration("custom", SECRET)
    body = orjson.dumps({"title": "x", **alert})
    response = client.post(
        f"/v1/wh/{tenant.id}/custom/{integration}",
        content=body,
        headers={"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})},
    )
    assert response.status_code == 202
    drain(runtime)
    incidents = client.get("/v1/incidents", headers=tenant.auth).json()["items"]
    return str(next(i["id"] for i in incidents if alert["service"] in i["services"]))


def channels_of(slack: SlackStandIn, incident_id: str) -> set[str]:
    return {
        str(c.args["channel"])
        for c in slack.calls_of("chat.postMessage")
        if not c.args.get("thread_ts")
        and c.args["metadata"]["event_payload"]["incident_id"] == incident_id
    }


#: A route whose non-critical pages wait out the weekend.
QUIET_TEAM = {
    "name": "team",
    "quiet_hours": "sat,sun 00:00-24:00",
    "destinations": [{"type": "slack", "channel": "#team"}],
}


def tenant_with(runtime: Runtime, *routes: dict[str, Any]) -> TenantHandle:
    tenant = new_tenant(runtime)
    runtime.notify_settings.put_slack(
        tenant.id, bot_token=TOKEN, signing_secret="s", default_channel="#oncall"
    )
    for route in routes:
        runtime.notify_settings.save_route(tenant.id, dict(route))
    return tenant


def test_routes_in_order_first_match_continue_min_severity_and_the_default(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, notifier, _ = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "checkout",
            "matchers": '{service="checkout"}',
            "continue": True,
            "destinations": [{"type": "slack", "channel": "#checkout"}],
        },
        {
            "name": "critical",
            "min_severity": "critical",
            "destinations": [{"type": "slack", "channel": "#critical"}],
        },
        {
            "name": "search",
            "matchers": '{service="search"}',
            "destinations": [{"type": "slack", "channel": "#search"}],
        },
    )
    checkout = fire(client, runtime, tenant, service="checkout", severity="critical")
    search = fire(client, runtime, tenant, service="search", severity="high")
    other = fire(client, runtime, tenant, service="batch", severity="low")
    notify(notifier)
    assert channels_of(slack, checkout) == {"#checkout", "#critical"}  # continue
    assert channels_of(slack, search) == {"#search"}  # below the critical route
    assert channels_of(slack, other) == {"#oncall"}  # nothing matched: the default


def test_routes_see_the_labels_silences_see_resource_included(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """One matcher means the same in a route and in a silence: ``resource`` (from the
    canonical field, here a custom alert's ``resource``) was seen by silences only, so
    a route for ``{resource="db-1"}`` never matched and the default channel paged."""
    runtime, client, slack, notifier, _ = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "db hosts",
            "matchers": '{resource="db-1", fingerprint!=""}',
            "destinations": [{"type": "slack", "channel": "#db"}],
        },
    )
    db = fire(client, runtime, tenant, service="db", severity="high", resource="db-1")
    web = fire(client, runtime, tenant, service="web", severity="high", resource="web-1")
    notify(notifier)
    assert channels_of(slack, db) == {"#db"}
    assert channels_of(slack, web) == {"#oncall"}


def test_quiet_hours_hold_back_non_critical_pages_but_never_critical_ones(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    now = datetime.now(UTC)
    clock.offset = timedelta(days=(5 - now.weekday()) % 7)  # a Saturday
    warning = fire(client, runtime, tenant, service="web", severity="medium")
    critical = fire(client, runtime, tenant, service="db", severity="critical")
    notify(notifier)
    assert channels_of(slack, warning) == set()
    assert channels_of(slack, critical) == {"#team"}


def test_a_page_held_back_by_quiet_hours_is_sent_once_they_end(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """As Alertmanager notifies a muted alert still firing after its mute ends: the
    page used to be dropped for good, the team never heard of the open incident, and
    its escalation went to the managers alone."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "team",
            "matchers": '{service=~"web|api"}',
            "quiet_hours": "sat,sun 00:00-24:00",
            "destinations": [{"type": "slack", "channel": "#team"}],
        },
    )
    now = datetime.now(UTC)
    clock.offset = timedelta(days=(5 - now.weekday()) % 7)  # a Saturday
    held = fire(client, runtime, tenant, service="web", severity="medium")
    acked = fire(client, runtime, tenant, service="api", severity="medium")
    unrouted = fire(client, runtime, tenant, service="batch", severity="medium")
    notify(notifier)
    assert channels_of(slack, held) == set()
    assert client.post(f"/v1/incidents/{acked}/ack", headers=tenant.auth).status_code == 200
    notify(notifier)  # still quiet: nothing is released
    assert channels_of(slack, held) == set()
    clock.offset += timedelta(days=2)  # Monday
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, held) == {"#team"}
    assert channels_of(slack, acked) == set()  # somebody is on it already
    assert channels_of(slack, unrouted) == {"#oncall"}  # the default channel, at once
    notify(notifier)
    assert len([m for m in slack.messages("#team") if held in str(m.get("metadata"))]) == 1


def test_an_unacknowledged_incident_escalates_once_with_a_thread_reply(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "db",
            "matchers": '{service=~"db|web"}',
            "destinations": [{"type": "slack", "channel": "#oncall"}],
            "escalation": {
                "after_seconds": 900,
                "destinations": [{"type": "slack", "channel": "#managers"}],
            },
        },
    )
    waiting = fire(client, runtime, tenant, service="db", severity="critical")
    acked = fire(client, runtime, tenant, service="web", severity="critical")
    notify(notifier)
    response = client.post(f"/v1/incidents/{acked}/ack", headers=tenant.auth)
    assert response.status_code == 200
    clock.offset = timedelta(seconds=600)
    notify(notifier)
    assert channels_of(slack, waiting) == {"#oncall"}  # not yet
    clock.offset = timedelta(seconds=1000)
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, waiting) == {"#oncall", "#managers"}
    assert channels_of(slack, acked) == {"#oncall"}  # acknowledged in time
    [first] = [m for m in slack.messages("#oncall") if waiting in str(m.get("metadata"))]
    replies = slack.replies("#oncall", first["ts"])
    assert any("unacknowledged" in r["text"] for r in replies), replies
    clock.offset = timedelta(seconds=5000)
    notify(notifier)
    assert len([m for m in slack.messages("#managers")]) == 1  # once


def test_a_route_stored_with_another_routes_name_still_escalates(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Two routes of one name (stored before names had to be unique): the escalation
    the second schedules was looked up by name, found the first, which has none, and
    nobody was escalated to."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "oncall",
            "matchers": '{service="db"}',
            "continue": True,
            "destinations": [{"type": "slack", "channel": "#db"}],
        },
        {
            "name": "oncall",
            "destinations": [{"type": "slack", "channel": "#oncall"}],
            "escalation": {
                "after_seconds": 900,
                "destinations": [{"type": "slack", "channel": "#managers"}],
            },
        },
    )
    waiting = fire(client, runtime, tenant, service="db", severity="critical")
    notify(notifier)
    assert channels_of(slack, waiting) == {"#db", "#oncall"}
    clock.offset = timedelta(seconds=1000)
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, waiting) == {"#db", "#oncall", "#managers"}


def test_a_suppressed_page_replayed_from_the_log_is_delivered_after_all(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, notifier, _ = setup
    tenant = tenant_with(runtime)
    client.patch("/v1/settings", json={"governance_mode": "strict"}, headers=tenant.auth)
    made = client.post(
        "/v1/silences", json={"matchers": '{service="db"}', "comment": "m"}, headers=tenant.auth
    )
    assert made.status_code == 201
    incident = fire(client, runtime, tenant, service="db", severity="medium")
    notify(notifier)
    assert channels_of(slack, incident) == set()  # strict: the silence held the page
    [logged] = client.get("/v1/suppressions", headers=tenant.auth).json()["items"]
    replay = client.post(f"/v1/suppressions/{logged['decision_id']}/replay", headers=tenant.auth)
    assert replay.status_code == 200
    notify(notifier)
    assert channels_of(slack, incident) == {"#oncall"}  # delivered after all


def test_a_snoozed_incident_escalates_only_once_its_snooze_is_over(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Snooze means "no reminders until then" (docs/notifications.md): an open
    incident snoozed for an hour was escalated to the managers 15 minutes after it
    opened all the same. Still unacknowledged when the snooze ends, it escalates then,
    as a snoozed PagerDuty incident re-triggers its escalation when the snooze expires."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "db",
            "destinations": [{"type": "slack", "channel": "#oncall"}],
            "escalation": {
                "after_seconds": 900,
                "destinations": [{"type": "slack", "channel": "#managers"}],
            },
        },
    )
    snoozed = fire(client, runtime, tenant, service="db", severity="critical")
    notify(notifier)
    response = client.post(
        f"/v1/incidents/{snoozed}/snooze", json={"minutes": 60}, headers=tenant.auth
    )
    assert response.status_code == 200
    clock.offset = timedelta(seconds=1000)  # past the escalation, inside the snooze
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, snoozed) == {"#oncall"}
    clock.offset = timedelta(seconds=3700)  # the snooze is over, nobody acknowledged
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, snoozed) == {"#oncall", "#managers"}


def test_escalation_and_held_pages_reach_incidents_beyond_the_first_page(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notifier read the newest 200 open incidents only: in a storm of more, the
    oldest (the ones waiting longest) never escalated and their held pages were never
    sent. Here a page of 2 stands for the 200."""
    runtime, client, slack, notifier, clock = setup
    monkeypatch.setattr(Notifier, "OPEN_PAGE", 2)
    tenant = tenant_with(
        runtime,
        {
            "name": "team",
            "quiet_hours": "sat,sun 00:00-24:00",
            "destinations": [{"type": "slack", "channel": "#team"}],
            "escalation": {
                "after_seconds": 900,
                "destinations": [{"type": "slack", "channel": "#managers"}],
            },
        },
    )
    now = datetime.now(UTC)
    clock.offset = timedelta(days=(5 - now.weekday()) % 7)  # a Saturday
    services = ("db", "web", "api", "batch", "search")
    incidents = [fire(client, runtime, tenant, service=s, severity="medium") for s in services]
    notify(notifier)
    assert all(channels_of(slack, i) == set() for i in incidents)  # held back
    clock.offset += timedelta(days=2)  # Monday: released, and long past 900 s
    for _ in range(3):
        notify(notifier)
    assert [channels_of(slack, i) for i in incidents] == [{"#team", "#managers"}] * len(services)


def test_a_route_with_an_escalation_and_no_destinations_of_its_own_escalates(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """A route that only escalates (the page goes out by the route before it, which
    continues): escalation looked for routes by the destinations they chose, found
    none for it, and nobody was ever escalated to."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "page",
            "continue": True,
            "destinations": [{"type": "slack", "channel": "#oncall"}],
        },
        {
            "name": "escalate",
            "escalation": {
                "after_seconds": 900,
                "destinations": [{"type": "slack", "channel": "#managers"}],
            },
        },
    )
    waiting = fire(client, runtime, tenant, service="db", severity="critical")
    notify(notifier)
    assert channels_of(slack, waiting) == {"#oncall"}
    clock.offset = timedelta(seconds=1000)
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, waiting) == {"#oncall", "#managers"}


def test_a_page_held_back_is_sent_when_the_quiet_hours_are_removed(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Quiet hours edited while a page is held back: the team drops them to hear about
    what is open now. The release looked only at routes that still had quiet hours,
    found none, and the held page was never sent."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    now = datetime.now(UTC)
    clock.offset = timedelta(days=(5 - now.weekday()) % 7)  # a Saturday
    held = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert channels_of(slack, held) == set()
    [stored] = client.get("/v1/routes", headers=tenant.auth).json()["items"]
    edited = client.patch(
        f"/v1/routes/{stored['id']}", json={"quiet_hours": None}, headers=tenant.auth
    )
    assert edited.status_code == 200, edited.text
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, held) == {"#team"}


def a_saturday(clock: Clock) -> None:
    now = datetime.now(UTC)
    clock.offset = timedelta(days=(5 - now.weekday()) % 7)


def held_incidents(runtime: Runtime, tenant: TenantHandle) -> set[str]:
    return {page.incident_id for page in runtime.outbox.held_pages(tenant.id)}


def test_a_page_held_back_goes_to_the_default_channel_when_its_route_is_deleted(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """The route that held the page is gone: no route takes the incident any more,
    so its page goes where an unrouted one goes, the default channel. The release
    needed a route with quiet hours that matched, and the page was never sent."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    a_saturday(clock)
    held = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert channels_of(slack, held) == set()
    assert held_incidents(runtime, tenant) == {held}
    [stored] = client.get("/v1/routes", headers=tenant.auth).json()["items"]
    deleted = client.delete(f"/v1/routes/{stored['id']}", headers=tenant.auth)
    assert deleted.status_code == 204, deleted.text
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, held) == {"#oncall"}
    assert held_incidents(runtime, tenant) == set()
    notify(notifier)
    assert len([m for m in slack.messages("#oncall") if held in str(m.get("metadata"))]) == 1


def test_a_page_held_back_and_acknowledged_meanwhile_is_dropped(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Somebody is on it already: once the quiet hours end nothing is sent, and its
    held page is forgotten (no row left behind for every later pass to read)."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    a_saturday(clock)
    acked = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert held_incidents(runtime, tenant) == {acked}
    assert client.post(f"/v1/incidents/{acked}/ack", headers=tenant.auth).status_code == 200
    notify(notifier)  # the acknowledgement's intent is planned (to nobody) first
    notify(notifier)
    assert held_incidents(runtime, tenant) == set()
    clock.offset += timedelta(days=2)  # Monday
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, acked) == set()
    assert slack.calls_of("chat.postMessage") == []


def test_critical_incidents_are_never_held_back(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    a_saturday(clock)
    critical = fire(client, runtime, tenant, service="db", severity="critical")
    warning = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert channels_of(slack, critical) == {"#team"}
    assert held_incidents(runtime, tenant) == {warning}


def test_a_reopened_incident_never_announced_is_held_and_released_alike(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Held, resolved and reopened inside the quiet hours: its ``reopened`` is its
    first page, held back like an ``opened``, and sent as one when they are removed."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(runtime, QUIET_TEAM)
    a_saturday(clock)
    incident = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    for action in ("resolve", "reopen"):
        done = client.post(f"/v1/incidents/{incident}/{action}", headers=tenant.auth)
        assert done.status_code == 200, done.text
        notify(notifier)
    notify(notifier)
    assert channels_of(slack, incident) == set()
    [page] = runtime.outbox.held_pages(tenant.id)
    assert (page.incident_id, page.event) == (incident, "reopened")
    [stored] = client.get("/v1/routes", headers=tenant.auth).json()["items"]
    edited = client.patch(
        f"/v1/routes/{stored['id']}", json={"quiet_hours": None}, headers=tenant.auth
    )
    assert edited.status_code == 200, edited.text
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, incident) == {"#team"}
    assert held_incidents(runtime, tenant) == set()


def test_a_held_page_of_a_snoozed_incident_waits_for_the_snooze_to_end(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Snooze means "no reminders until then", as for escalation: a page released
    while the incident is snoozed waits, and goes if it is still unacknowledged after."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "team",
            "quiet_hours": "mon-sun 00:00-24:00",
            "destinations": [{"type": "slack", "channel": "#team"}],
        },
    )
    snoozed = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    response = client.post(
        f"/v1/incidents/{snoozed}/snooze", json={"minutes": 60}, headers=tenant.auth
    )
    assert response.status_code == 200
    notify(notifier)  # the snooze is told to nobody: the quiet hours hold it too
    [stored] = client.get("/v1/routes", headers=tenant.auth).json()["items"]
    edited = client.patch(
        f"/v1/routes/{stored['id']}", json={"quiet_hours": None}, headers=tenant.auth
    )
    assert edited.status_code == 200, edited.text
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, snoozed) == set()
    assert held_incidents(runtime, tenant) == {snoozed}
    clock.offset = timedelta(minutes=61)
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, snoozed) == {"#team"}


def test_a_page_held_from_one_route_reaches_it_when_its_quiet_hours_end(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Two routes take the incident, one in its quiet hours: the other is told at once,
    and the quiet one's team used to hear nothing until the incident changed, since
    only a page held from every destination was recorded. Now the quiet route's
    destinations get it when the quiet hours end, and the others get no second page."""
    runtime, client, slack, notifier, clock = setup
    tenant = tenant_with(
        runtime,
        {
            "name": "team",
            "quiet_hours": "sat,sun 00:00-24:00",
            "continue": True,
            "destinations": [{"type": "slack", "channel": "#team"}],
        },
        {"name": "log", "destinations": [{"type": "slack", "channel": "#log"}]},
    )
    a_saturday(clock)
    incident = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert channels_of(slack, incident) == {"#log"}
    assert held_incidents(runtime, tenant) == {incident}
    clock.offset += timedelta(days=2)  # Monday
    notify(notifier)
    notify(notifier)
    assert channels_of(slack, incident) == {"#log", "#team"}
    assert held_incidents(runtime, tenant) == set()
    notify(notifier)
    for channel in ("#log", "#team"):
        posted = [m for m in slack.messages(channel) if incident in str(m.get("metadata"))]
        assert len(posted) == 1, channel


def test_a_quiet_route_whose_destination_was_told_anyway_holds_nothing(
    setup: tuple[Runtime, TestClient, SlackStandIn, Notifier, Clock],
) -> None:
    """Its channel got the page from another route: nobody waits for it."""
    runtime, client, slack, notifier, clock = setup
    shared = [{"type": "slack", "channel": "#team"}]
    tenant = tenant_with(
        runtime,
        {
            "name": "night",
            "quiet_hours": "sat,sun 00:00-24:00",
            "continue": True,
            "destinations": shared,
        },
        {"name": "day", "destinations": shared},
    )
    a_saturday(clock)
    incident = fire(client, runtime, tenant, service="web", severity="medium")
    notify(notifier)
    assert channels_of(slack, incident) == {"#team"}
    assert held_incidents(runtime, tenant) == set()
