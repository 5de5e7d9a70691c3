"""An incident's later notifications: where they go and in what order. Updates,
resolves and merges reach the destinations its first notification reached (its
living Slack message, its webhook), whatever its labels say by then; one incident's
events reach a destination in the order they happened, each body saying the state
of its own moment; a merge or a split tells the incidents that changed. With the
notifier on a clock the test controls, against the Slack stand-in and a webhook
receiver. Both modes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle
from dd0c_alert.app import build_runtime, notify_config
from dd0c_alert.pipeline.notifier import Notifier
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.web.app import create_app
from stand_ins.slack_api import SlackStandIn
from stand_ins.webhook_receiver import WebhookReceiver
from test_notify_routing import TOKEN, Clock, fire, tenant_with
from webhook_helpers import make_settings

pytestmark = pytest.mark.both_modes

Setup = tuple[Runtime, TestClient, SlackStandIn, WebhookReceiver, Notifier, Clock]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with SlackStandIn((TOKEN,)) as slack, WebhookReceiver() as hook:
        settings = make_settings(
            tmp_path / "d",
            slack_api_url=slack.base_url,
            notify_slack_per_second=100.0,
            notify_coalesce_seconds=0.0,
            notify_escalation_check_seconds=3600.0,
        )
        runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
        clock = Clock()
        notifier = Notifier(runtime.store, runtime.outbox, notify_config(settings), clock=clock)
        with TestClient(create_app(runtime)) as client:
            yield runtime, client, slack, hook, notifier, clock


def ago(minutes: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat()


def settle(notifier: Notifier, passes: int = 30) -> None:
    """Notifier passes until one finds nothing due (or ``passes`` ran out)."""

    async def run() -> None:
        for _ in range(passes):
            queued = await notifier.run_once()
            await notifier.drain()
            if not queued:
                return

    asyncio.run(run())


def act(client: TestClient, tenant: TenantHandle, incident_id: str, path: str, **body: Any) -> None:
    response = client.post(
        f"/v1/incidents/{incident_id}/{path}", json=body or None, headers=tenant.auth
    )
    assert response.status_code == 200, response.text


def posts(slack: SlackStandIn, incident_id: str) -> list[str]:
    """Channels the incident's top-level messages were posted to."""
    return [
        str(c.args["channel"])
        for c in slack.calls_of("chat.postMessage")
        if not c.args.get("thread_ts")
        and c.args["metadata"]["event_payload"]["incident_id"] == incident_id
    ]


def message_of(slack: SlackStandIn, channel: str, incident_id: str) -> dict[str, Any]:
    [found] = [m for m in slack.messages(channel) if incident_id in str(m.get("metadata"))]
    return found


def events(hook: WebhookReceiver, incident_id: str) -> list[dict[str, Any]]:
    """The webhook bodies about one incident, as accepted (2xx), in arrival order."""
    bodies = [orjson.loads(r.body) for r in hook.requests if r.answer.startswith("2")]
    return [b for b in bodies if b["incident"]["id"] == incident_id]


def db_tenant(runtime: Runtime, hook: WebhookReceiver) -> TenantHandle:
    """Default channel #oncall; db services go to #db and to a webhook."""
    return tenant_with(
        runtime,
        {
            "name": "db",
            "matchers": '{service=~"db.*"}',
            "destinations": [
                {"type": "slack", "channel": "#db"},
                {"type": "webhook", "url": hook.url, "secret": "whsec-followups"},
            ],
        },
    )


def test_a_merged_incident_updates_its_own_message_not_the_default_channel(
    setup: Setup,
) -> None:
    runtime, client, slack, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    x = fire(client, runtime, tenant, service="db-x", severity="high", fingerprint="x")
    y = fire(client, runtime, tenant, service="db-y", severity="high", fingerprint="y")
    settle(notifier)
    assert posts(slack, x) == ["#db"] and posts(slack, y) == ["#db"]
    act(client, tenant, x, "merge", into=y)
    settle(notifier)
    assert posts(slack, x) == ["#db"]  # nothing new in #oncall, where x never was
    assert slack.messages("#oncall") == []
    shown = message_of(slack, "#db", x)
    updated = [c for c in slack.calls_of("chat.update") if c.args["ts"] == shown["ts"]]
    assert updated, "x's own message was not updated"
    [reply] = slack.replies("#db", shown["ts"])
    assert "Merged" in reply["text"] and y in reply["text"]
    assert [e["type"] for e in events(hook, x)] == ["incident.opened", "incident.merged"]


def test_a_merge_tells_the_incident_that_absorbed_the_alerts(setup: Setup) -> None:
    runtime, client, slack, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    x = fire(client, runtime, tenant, service="db-x", severity="high", fingerprint="x")
    y = fire(client, runtime, tenant, service="db-y", severity="high", fingerprint="y")
    settle(notifier)
    act(client, tenant, x, "merge", into=y)
    settle(notifier)
    told = events(hook, y)
    assert [e["type"] for e in told] == ["incident.opened", "incident.updated"]
    assert told[-1]["incident"]["alert_count"] == 2
    assert sorted(told[-1]["incident"]["services"]) == ["db-x", "db-y"]
    shown = orjson.dumps(message_of(slack, "#db", y)["blocks"]).decode()
    assert "2 alerts" in shown
    assert posts(slack, y) == ["#db"]  # updated in place


def test_a_split_updates_the_incident_it_came_from(setup: Setup) -> None:
    runtime, client, slack, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    whole = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    assert fire(client, runtime, tenant, service="db", severity="high", fingerprint="b") == whole
    settle(notifier)
    alerts = client.get(f"/v1/incidents/{whole}", headers=tenant.auth).json()["alerts"]
    assert len(alerts) == 2
    before = len(events(hook, whole))
    response = client.post(
        f"/v1/incidents/{whole}/split",
        json={"alert_ids": [alerts[1]["id"]]},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    settle(notifier)
    told = events(hook, whole)[before:]
    assert [e["type"] for e in told] == ["incident.updated"]
    assert told[-1]["incident"]["alert_count"] == 1
    assert "1 alert," in orjson.dumps(message_of(slack, "#db", whole)["blocks"]).decode()


def test_resolve_and_reopen_back_to_back_arrive_in_order_each_saying_its_own_state(
    setup: Setup,
) -> None:
    runtime, client, _, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    incident = fire(client, runtime, tenant, service="db", severity="medium", fingerprint="o")
    settle(notifier)
    for _ in range(3):
        act(client, tenant, incident, "resolve")
        act(client, tenant, incident, "reopen")
    settle(notifier)
    told = events(hook, incident)
    assert [e["type"].removeprefix("incident.") for e in told] == [
        "opened",
        *(["resolved", "reopened"] * 3),
    ]
    for event in told[1:]:
        if event["type"] == "incident.resolved":
            assert event["incident"]["status"] == "resolved", event
            assert event["incident"]["resolved_at"] is not None
            assert event["incident"]["resolved_by"] is not None
        else:
            assert event["incident"]["status"] == "open", event
            assert event["incident"]["resolved_at"] is None
    stamps = [e["timestamp"] for e in told]  # when each happened, not when planned
    assert stamps == sorted(set(stamps))


def test_a_later_event_waits_for_an_earlier_one_that_is_being_retried(setup: Setup) -> None:
    runtime, client, _, hook, notifier, clock = setup
    tenant = db_tenant(runtime, hook)
    incident = fire(client, runtime, tenant, service="db", severity="medium", fingerprint="r")
    settle(notifier)
    hook.script("500")  # the resolve's first attempt fails
    act(client, tenant, incident, "resolve")
    act(client, tenant, incident, "reopen")
    settle(notifier)
    assert [e["type"] for e in events(hook, incident)] == ["incident.opened"]
    clock.offset = timedelta(minutes=5)  # past the resolve's backoff
    settle(notifier)
    assert [e["type"] for e in events(hook, incident)] == [
        "incident.opened",
        "incident.resolved",
        "incident.reopened",
    ]


def test_a_bridge_merge_tells_both_incidents_and_the_survivor_keeps_the_acknowledgement(
    setup: Setup,
) -> None:
    runtime, client, _, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    topology = {"dependencies": {"db-web": ["db-x", "db-y"]}}
    assert client.put("/v1/topology", json=topology, headers=tenant.auth).status_code == 200
    x = fire(client, runtime, tenant, service="db-x", fingerprint="x", started_at=ago(4))
    y = fire(client, runtime, tenant, service="db-y", fingerprint="y", started_at=ago(3))
    settle(notifier)
    act(client, tenant, y, "ack")
    assert fire(client, runtime, tenant, service="db-web", fingerprint="w", started_at=ago(2)) == x
    settle(notifier)
    merged = events(hook, y)
    assert [e["type"] for e in merged] == [
        "incident.opened",
        "incident.acknowledged",
        "incident.merged",
    ]
    told = events(hook, x)
    assert [e["type"] for e in told] == ["incident.opened", "incident.updated"]
    shown = told[-1]["incident"]
    assert (shown["status"], shown["alert_count"]) == ("acknowledged", 3)
    assert shown["acknowledged_at"] == merged[1]["incident"]["acknowledged_at"]
    assert shown["acknowledged_by"] == merged[1]["incident"]["acknowledged_by"] is not None


def test_a_split_announces_the_new_incident_where_a_new_incident_goes(setup: Setup) -> None:
    runtime, client, slack, hook, notifier, _ = setup
    tenant = db_tenant(runtime, hook)
    whole = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a")
    assert fire(client, runtime, tenant, service="db", severity="high", fingerprint="b") == whole
    settle(notifier)
    alerts = client.get(f"/v1/incidents/{whole}", headers=tenant.auth).json()["alerts"]
    response = client.post(
        f"/v1/incidents/{whole}/split",
        json={"alert_ids": [alerts[1]["id"]]},
        headers=tenant.auth,
    )
    assert response.status_code == 201, response.text
    split_out = response.json()["id"]
    assert response.json()["paged"] is True
    settle(notifier)
    told = events(hook, split_out)
    assert [e["type"] for e in told] == ["incident.opened"]
    assert told[0]["incident"]["alert_count"] == 1
    assert posts(slack, split_out) == ["#db"]
    assert [e["type"] for e in events(hook, whole)][-1] == "incident.updated"
