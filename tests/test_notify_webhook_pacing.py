"""An incident's ``incident.updated`` webhook events are paced like its Slack message:
at most one per ``DD0C_NOTIFY_COALESCE_SECONDS`` per destination, the latest state
last, each under an event id of its own; ``incident.opened`` and ``.resolved`` are
never held back. A storm once sent one update per worker batch. With the notifier on
a clock the test controls, against a webhook receiver. Both modes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
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
from stand_ins.webhook_receiver import WebhookReceiver
from test_notify_followups import events, settle
from test_notify_routing import SECRET, TOKEN, Clock, fire, tenant_with
from webhook_helpers import auth_headers, make_settings

pytestmark = pytest.mark.both_modes
PACE = 30.0

Setup = tuple[Runtime, TestClient, WebhookReceiver, Notifier, Clock]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    with SlackStandIn((TOKEN,)) as slack, WebhookReceiver() as hook:
        settings = make_settings(
            tmp_path / "d",
            slack_api_url=slack.base_url,
            notify_coalesce_seconds=PACE,
            notify_escalation_check_seconds=3600.0,
        )
        runtime = build_runtime(settings, roles=frozenset({"ingest", "correlate", "api"}))
        clock = Clock()
        notifier = Notifier(runtime.store, runtime.outbox, notify_config(settings), clock=clock)
        with TestClient(create_app(runtime)) as client:
            yield runtime, client, hook, notifier, clock


def hooked(runtime: Runtime, hook: WebhookReceiver) -> TenantHandle:
    return tenant_with(
        runtime,
        {
            "name": "db",
            "matchers": '{service="db"}',
            "destinations": [{"type": "webhook", "url": hook.url, "secret": "whsec-pace"}],
        },
    )


def resolve_all(client: TestClient, runtime: Runtime, tenant: TenantHandle, n: int) -> None:
    """The ``n`` alerts ``a0``… resolved in one delivery (one worker batch)."""
    body = orjson.dumps(
        [
            {"title": "x", "service": "db", "fingerprint": f"a{k}", "status": "resolved"}
            for k in range(n)
        ]
    )
    headers = {"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})}
    integration = tenant.integration("custom", SECRET)
    response = client.post(
        f"/v1/wh/{tenant.id}/custom/{integration}", content=body, headers=headers
    )
    assert response.status_code == 202, response.text
    drain(runtime)


def kinds(told: list[dict[str, Any]]) -> list[str]:
    return [e["type"].removeprefix("incident.") for e in told]


def test_a_growing_incident_sends_one_update_per_interval_the_latest_state_last(
    setup: Setup,
) -> None:
    runtime, client, hook, notifier, clock = setup
    tenant = hooked(runtime, hook)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a0")
    settle(notifier)
    assert kinds(events(hook, incident)) == ["opened"]
    for k in range(1, 6):  # five batches, each an update, within one interval
        assert fire(client, runtime, tenant, service="db", fingerprint=f"a{k}") == incident
        settle(notifier)
    assert kinds(events(hook, incident)) == ["opened"], "an update went out within the pace"
    clock.offset += timedelta(seconds=PACE + 1)
    settle(notifier)
    told = events(hook, incident)
    assert kinds(told) == ["opened", "updated"]
    assert told[-1]["incident"]["alert_count"] == 6  # the newest state, once
    for k in range(6, 9):  # the next interval: held again, then the newest once
        fire(client, runtime, tenant, service="db", fingerprint=f"a{k}")
        settle(notifier)
    assert kinds(events(hook, incident)) == ["opened", "updated"]
    clock.offset += timedelta(seconds=PACE + 1)
    settle(notifier)
    told = events(hook, incident)
    assert kinds(told) == ["opened", "updated", "updated"]
    assert told[-1]["incident"]["alert_count"] == 9
    assert len({e["id"] for e in told}) == 3  # receivers dedupe by id: each its own


def test_a_resolve_is_not_held_back_by_a_paced_update_nor_followed_by_it(setup: Setup) -> None:
    runtime, client, hook, notifier, clock = setup
    tenant = hooked(runtime, hook)
    incident = fire(client, runtime, tenant, service="db", severity="high", fingerprint="a0")
    settle(notifier)
    fire(client, runtime, tenant, service="db", fingerprint="a1")  # an update, held
    settle(notifier)
    resolve_all(client, runtime, tenant, 2)
    settle(notifier)  # no time passes: the resolve goes at once
    told = events(hook, incident)
    assert kinds(told) == ["opened", "resolved"]
    assert told[-1]["incident"]["status"] == "resolved"
    assert told[-1]["incident"]["alert_count"] == 2
    clock.offset += timedelta(seconds=PACE + 1)
    settle(notifier)
    assert kinds(events(hook, incident)) == ["opened", "resolved"]  # nothing older after it
    deliveries = runtime.outbox.incident_deliveries(tenant.id, incident)
    assert all(d["status"] == "delivered" for d in deliveries)
