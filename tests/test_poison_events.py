"""No tenant's input can stall the pipeline for the others (issue: hostile input).

- A regex that backtracks for minutes under Python's ``re`` runs in linear time
  (RE2), and what RE2 cannot run is refused with 422.
- An event that costs more than its time budget is set aside to the dead-letter
  store as ``processing_timeout``; the rest of its batch goes on.
- An event claimed again and again without finishing (the process died on it) is
  dead-lettered as ``processing_abandoned`` without running once more.
- One tenant's storm with costly rules delays another tenant's alert by about one
  batch: the queue hands out work in turns across tenants.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from conftest import TenantHandle, drain
from dd0c_alert.app import build_runtime
from dd0c_alert.correlation.model import Silence
from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.domain.ids import new_id
from dd0c_alert.pipeline.dead_letters import replay_dead_letter
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.worker import Worker
from dd0c_alert.storage.ports import AlertFilter, IncidentFilter
from dd0c_alert.web.app import create_app
from webhook_helpers import (
    auth_headers,
    dead_letters,
    make_settings,
    new_tenant,
    running,
    stored_records,
)

pytestmark = pytest.mark.both_modes
SECRET = "poison-secret"


def post_custom(client: TestClient, tenant: TenantHandle, alerts: Any) -> str:
    integration = tenant.integration("custom", SECRET)
    body = orjson.dumps(alerts)
    response = client.post(
        f"/v1/wh/{tenant.id}/custom/{integration}",
        content=body,
        headers={"Content-Type": "application/json", **auth_headers("custom", body, SECRET, {})},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def costly_rules(runtime: Runtime, tenant_id: str, count: int = 300) -> None:
    """Legal but expensive: many silences whose matchers all run on every alert (each
    fails on its last matcher, so none is skipped early and none applies)."""
    for n in range(count):
        matchers = parse_matchers(
            ", ".join(f'l{k}=~".*|x{n}"' for k in range(30)) + f', service="never-{n}"'
        )
        runtime.store.create_silence(tenant_id, Silence(id=new_id(), matchers=matchers))


@pytest.mark.timeout(120)
def test_a_backtracking_silence_regex_cannot_stall_the_worker(tmp_path: Path) -> None:
    with running(tmp_path / "d") as (runtime, client):
        attacker, victim = new_tenant(runtime, "attacker"), new_tenant(runtime, "victim")
        response = client.post(
            "/v1/silences",
            json={"matchers": '{service=~"(a+)+$"}', "comment": "catastrophic under re"},
            headers=attacker.auth,
        )
        assert response.status_code in (200, 201), response.text
        post_custom(client, attacker, {"title": "boom", "service": "a" * 36 + "!"})
        post_custom(client, victim, {"title": "ordinary", "service": "checkout"})
        drain(runtime, timeout=30)
        assert [r["service"] for r in stored_records(runtime, attacker.id)] == ["a" * 36 + "!"]
        assert [r["service"] for r in stored_records(runtime, victim.id)] == ["checkout"]
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("matchers", "message"),
    [
        ('{service=~"(?=admin)a.*"}', "RE2"),
        ('{service=~"(a)\\\\1"}', "RE2"),
        ('{service=~"' + "a" * 2000 + '"}', "limit is 1024"),
        ('{service="' + "a" * 900_000 + '"}', "is 900000 characters long; the limit is 1024"),
        ('{service!="' + "a" * 1025 + '"}', "is 1025 characters long; the limit is 1024"),
        ("{" + "n" * 257 + '="x"}', "is 257 characters long; the limit is 256"),
        ('{service=~"\ud800"}', "surrogate"),
        (", ".join(f'l{n}="x"' for n in range(40)), "DD0C_MAX_MATCHERS_PER_RULE"),
    ],
)
def test_rules_the_engine_cannot_run_safely_are_refused_with_422(
    client: TestClient, tenant: TenantHandle, matchers: str, message: str
) -> None:
    for path, body in (
        ("/v1/silences", {"matchers": matchers}),
        ("/v1/inhibitions", {"source": matchers, "target": '{severity="low"}'}),
    ):
        # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it
        content = json.dumps(body)
        headers = {**tenant.auth, "Content-Type": "application/json"}
        response = client.post(path, content=content, headers=headers)
        assert response.status_code == 422, response.text
        error = response.json()
        assert error["error"] in ("invalid_request", "limit_exceeded")
        assert message in error["detail"]


@pytest.mark.timeout(180)
def test_an_event_over_its_time_budget_is_set_aside_and_the_batch_goes_on(
    tmp_path: Path,
) -> None:
    overrides = {"worker_event_budget_seconds": 0.3, "worker_batch_budget_seconds": 0.5}
    with running(tmp_path / "d", **overrides) as (runtime, client):
        tenant = new_tenant(runtime)
        costly_rules(runtime, tenant.id)
        # One event of 3,000 alerts costs ~3,000 x 300 silences: far over 0.3 s.
        poison = post_custom(
            client, tenant, [{"title": f"storm {n}", "service": "svc"} for n in range(3000)]
        )
        small = [
            post_custom(client, tenant, {"title": f"one {n}", "service": "s"}) for n in range(5)
        ]
        drain(runtime, timeout=120)
        letters = dead_letters(runtime, tenant.id)
        assert [d["event_id"] for d in letters] == [poison]
        assert letters[0]["error"].startswith("processing_timeout:")
        stored = {r["event_id"] for r in stored_records(runtime, tenant.id)}
        assert stored == set(small)


def test_an_event_that_never_finishes_is_abandoned_after_max_attempts(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "d", worker_max_attempts=3)
    runtime = build_runtime(settings, roles=frozenset({"ingest", "api"}))
    with TestClient(create_app(runtime)) as client:
        tenant = new_tenant(runtime)
        event_id = post_custom(client, tenant, {"title": "crashes the worker", "service": "s"})
        # Three claims that never finished: the process died each time mid-batch.
        for _ in range(3):  # pgmq leases whole seconds: wait for each lease to end
            deadline = time.monotonic() + 10
            while not (claimed := runtime.queue.claim(10, 0)):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert [e.event_id for e in claimed] == [event_id]
        worker = Worker(runtime.store, runtime.queue, runtime.archive, max_attempts=3)
        deadline = time.monotonic() + 10
        while worker.run_once() == 0:  # the last lease has to end first
            assert time.monotonic() < deadline
            time.sleep(0.05)
        letters = dead_letters(runtime, tenant.id)
        assert [d["event_id"] for d in letters] == [event_id]
        assert letters[0]["error"].startswith("processing_abandoned:")
        assert stored_records(runtime, tenant.id) == []
        assert runtime.queue.depth().messages == 0


@pytest.mark.timeout(300)
def test_a_noisy_neighbour_delays_another_tenant_by_about_one_batch(tmp_path: Path) -> None:
    """Tenant A queues a 10,000-alert storm (100 webhooks of 100) under costly rules
    before tenant B's one critical alert. B's alert is decided within a bound that
    does not grow with A's backlog; every alert of A is processed."""
    with running(tmp_path / "d") as (runtime, client):
        a, b = new_tenant(runtime, "noisy"), new_tenant(runtime, "quiet")
        costly_rules(runtime, a.id, count=10)
        runtime.worker.stop()  # queue A's whole storm ahead of B, as a burst would
        for n in range(100):
            post_custom(
                client,
                a,
                [{"title": f"alert {n}-{k}", "service": f"svc-{k % 20}"} for k in range(100)],
            )
        post_custom(
            client, b, {"title": "checkout down", "service": "checkout", "severity": "critical"}
        )
        started = time.monotonic()
        runtime.worker.start()
        decided_after = None
        while decided_after is None:
            if stored_records(runtime, b.id):
                decided_after = time.monotonic() - started
            assert time.monotonic() - started < 120, "B's alert was never decided"
            time.sleep(0.02)
        drain(runtime, timeout=240)
        total_a = len(all_alerts(runtime, a.id))
        backlog_s = time.monotonic() - started
        print(f"\nB decided after {decided_after:.2f} s; A's 10,000 alerts took {backlog_s:.1f} s")
        assert total_a == 10_000
        # The bound: B waits for at most the batch in flight plus its own, a small
        # fraction of A's backlog (not a wall-clock assertion on this machine's speed).
        assert decided_after < backlog_s / 4


def all_alerts(runtime: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = runtime.store.list_alerts(tenant_id, AlertFilter(), 500, cursor)
        out += page.items
        cursor = page.next_cursor
        if not cursor:
            return out


def post_alertmanager(client: TestClient, tenant: TenantHandle, alerts: list[Any]) -> str:
    integration = tenant.integration("alertmanager", SECRET)
    body = orjson.dumps({"version": "4", "status": "firing", "receiver": "r", "alerts": alerts})
    response = client.post(
        f"/v1/wh/{tenant.id}/alertmanager/{integration}",
        content=body,
        headers={
            "Content-Type": "application/json",
            **auth_headers("alertmanager", body, SECRET, {}),
        },
    )
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


def test_one_malformed_alert_does_not_take_its_group_down(tmp_path: Path) -> None:
    with running(tmp_path / "d") as (runtime, client):
        tenant = new_tenant(runtime)
        good = [{"labels": {"alertname": f"Good{n}", "service": "api"}} for n in range(3)]
        malformed = [{"labels": [{"not": "a tag"}]}, 42]
        event_id = post_alertmanager(
            client, tenant, [good[0], malformed[0], good[1], malformed[1], good[2]]
        )
        drain(runtime)
        stored = stored_records(runtime, tenant.id)
        assert sorted(r["title"] for r in stored) == ["Good0", "Good1", "Good2"]
        assert {r["event_id"] for r in stored} == {event_id}
        [letter] = dead_letters(runtime, tenant.id)
        assert letter["event_id"] == event_id
        assert letter["error"].startswith(
            "PartialPayload: 2 of 5 items could not be read and were skipped (the other 3 "
            "were processed"
        )
        assert "alerts[1]: an alert needs 'labels' or a 'fingerprint'" in letter["error"]
        assert "alerts[3]: the alert must be a JSON object, got int" in letter["error"]
        incidents = runtime.store.list_incidents(tenant.id, IncidentFilter(), 50, None).items
        assert [i["alert_count"] for i in incidents] == [3]

        # A replay reads only the two skipped alerts: still unreadable, they are a dead
        # letter again (and again); the good ones are not processed a second time.
        for _ in range(2):
            assert replay_dead_letter(runtime.store, runtime.queue, letter["id"]) == event_id
            drain(runtime)
            assert stored_records(runtime, tenant.id) == stored
            [letter] = dead_letters(runtime, tenant.id)
            assert letter["error"].startswith("PayloadError: none of the 2 items could be read")
            listed = runtime.store.list_incidents(tenant.id, IncidentFilter(), 50, None).items
            assert listed == incidents
