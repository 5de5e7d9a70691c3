"""Suggestions end to end: history sent through the signed webhook, the job run over
the stored data, then listed, accepted (becoming rules the engine applies) and
dismissed through the HTTP API; plus the scheduler and the CLI."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from conftest import TenantHandle, cli_environment, clock_at_test_start, drain, tenant_connection
from dd0c_alert.cli import app as cli_app
from dd0c_alert.config import Settings
from dd0c_alert.pipeline import worker
from dd0c_alert.pipeline.cron import Scheduler
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.pipeline.suggest import run_suggestions
from test_smoke_custom import sign
from webhook_helpers import new_tenant, running

pytestmark = pytest.mark.both_modes

SECRET = "s3cret"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


NOW = _now()
_clock = clock_at_test_start(_now)  # NOW again as each test starts


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def send(client: Any, tenant: TenantHandle, items: list[dict[str, Any]]) -> None:
    body = json.dumps(items).encode()
    response = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert response.status_code == 202, response.text
    drain(tenant.runtime)


def fired(
    title: str, service: str, at: datetime, lasts: timedelta | None, **extra: Any
) -> list[dict[str, Any]]:
    """A firing, and its resolve ``lasts`` later."""
    alert = {"title": title, "service": service, "severity": "warning", "started_at": iso(at)}
    alert.update(extra)
    if lasts is None:
        return [alert]
    return [alert, {**alert, "status": "resolved", "ended_at": iso(at + lasts)}]


def blips(count: int = 12) -> list[dict[str, Any]]:
    """A CPU alert on web firing every 5 hours, gone within a minute each time."""
    return [
        item
        for n in range(count)
        for item in fired(
            "CPU blip",
            "web",
            NOW - timedelta(hours=5 * n + 1, minutes=17),
            timedelta(seconds=50),
            fingerprint="cpu-blip",
        )
    ]


def cascades() -> list[dict[str, Any]]:
    """payments-db alerts, then checkout two minutes later, on four days."""
    items = []
    for day in range(1, 5):
        at = NOW - timedelta(days=day, hours=3)
        items += fired("DB latency", "payments-db", at, timedelta(minutes=20))
        items += fired(
            "Checkout errors", "checkout", at + timedelta(minutes=2), timedelta(minutes=20)
        )
    return items


def deploy_storms() -> list[dict[str, Any]]:
    """api alerts three minutes after each of four deploys."""
    items: list[dict[str, Any]] = []
    for day in range(1, 5):
        at = NOW - timedelta(days=day, hours=9)
        items.append(
            {"kind": "deploy", "service": "api", "version": f"v{day}", "started_at": iso(at)}
        )
        items += fired("5xx rate", "api", at + timedelta(minutes=3), timedelta(minutes=10))
    return items


def suggestions(client: Any, tenant: TenantHandle, **params: str) -> list[dict[str, Any]]:
    response = client.get("/v1/suggestions", headers=tenant.auth, params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def by_kind(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["kind"]: item for item in items}


def test_job_proposes_from_stored_history_and_people_decide(client, tenant: TenantHandle) -> None:
    tenant.integration("custom", SECRET)
    send(client, tenant, blips() + cascades() + deploy_storms())
    found = run_suggestions(tenant.runtime.store, tenant.id)
    assert sorted(s.kind for s in found) == ["deploy_grace", "link", "tune"]

    items = by_kind(suggestions(client, tenant, status="open"))
    assert set(items) == {"tune", "link", "deploy_grace"}
    tune, link, grace = items["tune"], items["link"], items["deploy_grace"]
    assert tune["title"] == (
        "'CPU blip' on web fired 12 times this week, always auto-resolved within 2 min, "
        "never acknowledged"
    )
    assert tune["evidence"]["fired"] == 12
    assert link["proposal"]["service"] == "checkout"
    assert link["proposal"]["depends_on"] == "payments-db"
    assert link["evidence"]["together"] == 4
    assert grace["proposal"] == {
        "action": "deploy_grace",
        "service": "api",
        "grace_seconds": 180,
        "applies_to": "non-critical alerts",
    }
    assert all(i["status"] == "open" and i["decided_at"] is None for i in items.values())

    # Accept the link: the dependency is declared.
    response = client.post(f"/v1/suggestions/{link['id']}/accept", headers=tenant.auth)
    assert response.status_code == 200, response.text
    accepted = response.json()
    assert accepted["applied"] is True
    assert accepted["rule"] == {
        "kind": "dependency",
        "service": "checkout",
        "depends_on": "payments-db",
    }
    assert accepted["suggestion"]["status"] == "accepted"
    assert accepted["suggestion"]["decided_at"] is not None
    _, rules = tenant.runtime.store.tenant_config(tenant.id)
    assert rules.dependencies == {"checkout": frozenset({"payments-db"})}
    again = client.post(f"/v1/suggestions/{link['id']}/accept", headers=tenant.auth)
    assert again.status_code == 409
    assert again.json() == {"error": "already_decided", "detail": "the suggestion is accepted"}

    # Accepting a deploy grace creates nothing, and says so.
    response = client.post(f"/v1/suggestions/{grace['id']}/accept", headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is False and response.json()["rule"] is None
    assert "no deploy grace window" in response.json()["note"]

    # Dismiss the tune: it is not proposed again.
    response = client.post(f"/v1/suggestions/{tune['id']}/dismiss", headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json()["suggestion"]["status"] == "dismissed"
    assert response.json()["applied"] is False
    assert (
        client.post(f"/v1/suggestions/{tune['id']}/dismiss", headers=tenant.auth).status_code == 409
    )

    run_suggestions(tenant.runtime.store, tenant.id)
    assert suggestions(client, tenant, status="open") == []
    statuses = {i["kind"]: i["status"] for i in suggestions(client, tenant)}
    assert statuses == {"tune": "dismissed", "link": "accepted", "deploy_grace": "accepted"}
    assert [i["kind"] for i in suggestions(client, tenant, kind="tune")] == ["tune"]
    _, rules = tenant.runtime.store.tenant_config(tenant.id)
    assert rules.silences == ()  # a dismissed tune made no rule


def _incidents(client: Any, tenant: TenantHandle) -> dict[str, str]:
    """Live incidents by their only service."""
    response = client.get("/v1/incidents", headers=tenant.auth)
    return {i["services"][0]: i["id"] for i in response.json()["items"] if len(i["services"]) == 1}


def _act(client: Any, tenant: TenantHandle, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, headers=tenant.auth)
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_merges_and_splits_by_hand_teach_links_and_unlinks(client, tenant: TenantHandle) -> None:
    tenant.integration("custom", SECRET)
    topology = {"dependencies": {"api": ["db"]}}
    assert client.put("/v1/topology", json=topology, headers=tenant.auth).status_code == 200
    merged: list[tuple[str, str]] = []
    for hours in (30, 20):  # two separate pairs of incidents, merged by hand each time
        at = NOW - timedelta(hours=hours)
        send(client, tenant, fired(f"Checkout 5xx {hours}", "checkout", at, None))
        slow = fired(f"DB slow {hours}", "payments-db", at + timedelta(minutes=1), None)
        send(client, tenant, slow)
        live = _incidents(client, tenant)
        _act(
            client,
            tenant,
            f"/v1/incidents/{live['checkout']}/merge",
            {"into": live["payments-db"]},
        )
        merged.append((live["checkout"], live["payments-db"]))
    run_suggestions(tenant.runtime.store, tenant.id)
    [link] = suggestions(client, tenant, kind="link")
    assert link["proposal"]["service"] == "checkout"
    assert link["proposal"]["depends_on"] == "payments-db"
    assert link["evidence"]["merged_by_hand"] == 2
    cited = [(c["kind"], c["incident_id"], c["other_id"]) for c in link["cites"]]
    assert cited == [("merge", *pair) for pair in reversed(merged)]

    # api is declared to depend on db, so their alerts group; people split them apart twice.
    for hours in (12, 6):
        at = NOW - timedelta(hours=hours)
        send(
            client,
            tenant,
            fired(f"DB down {hours}", "db", at, None)
            + fired(f"API 5xx {hours}", "api", at + timedelta(minutes=1), None),
        )
        [both] = [
            i
            for i in client.get("/v1/incidents", headers=tenant.auth).json()["items"]
            if sorted(i["services"]) == ["api", "db"]
        ]
        detail = client.get(f"/v1/incidents/{both['id']}", headers=tenant.auth).json()
        api = [a["id"] for a in detail["alerts"] if a["service"] == "api"]
        _act(client, tenant, f"/v1/incidents/{both['id']}/split", {"alert_ids": api})
    run_suggestions(tenant.runtime.store, tenant.id)
    [unlink] = suggestions(client, tenant, kind="unlink")
    assert unlink["proposal"] == {
        "action": "remove_dependency",
        "service": "api",
        "depends_on": "db",
    }
    assert [c["kind"] for c in unlink["cites"]] == ["split", "split"]
    response = client.post(f"/v1/suggestions/{unlink['id']}/accept", headers=tenant.auth)
    assert response.status_code == 200, response.text
    assert response.json()["rule"] == {
        "kind": "dependency_removed",
        "service": "api",
        "depends_on": "db",
    }
    _, rules = tenant.runtime.store.tenant_config(tenant.id)
    assert "db" not in rules.dependencies.get("api", frozenset())


def test_suggestions_of_another_tenant_answer_404(client, tenant: TenantHandle) -> None:
    tenant.integration("custom", SECRET)
    send(client, tenant, blips())
    run_suggestions(tenant.runtime.store, tenant.id)
    [mine] = suggestions(client, tenant)
    other = new_tenant(tenant.runtime, "other")
    assert suggestions(client, other) == []
    for action in ("accept", "dismiss"):
        response = client.post(f"/v1/suggestions/{mine['id']}/{action}", headers=other.auth)
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
    assert client.post("/v1/suggestions/nope/accept", headers=tenant.auth).status_code == 404
    assert suggestions(client, tenant)[0]["status"] == "open"
    assert (
        client.get("/v1/suggestions", headers=tenant.auth, params={"cursor": "x"}).status_code
        == 400
    )
    assert (
        client.get("/v1/suggestions", headers=tenant.auth, params={"status": "new"}).status_code
        == 422
    )
    assert client.get("/v1/suggestions").status_code == 401


def test_open_suggestions_expire_when_history_stops_supporting_them(
    client, tenant: TenantHandle
) -> None:
    tenant.integration("custom", SECRET)
    send(client, tenant, blips())
    run_suggestions(tenant.runtime.store, tenant.id)
    [tune] = suggestions(client, tenant)
    later = NOW + timedelta(days=8)  # the blips are older than a week by then
    assert run_suggestions(tenant.runtime.store, tenant.id, later) == []
    [expired] = suggestions(client, tenant)
    assert (expired["id"], expired["status"]) == (tune["id"], "expired")
    run_suggestions(tenant.runtime.store, tenant.id)  # supported again: reopened, same id
    assert [(i["id"], i["status"]) for i in suggestions(client, tenant)] == [(tune["id"], "open")]


def decision_of(settings: Settings, tenant_id: str, alert_id: str) -> Any:
    """The alert's latest decision, read straight from the decision log."""
    with tenant_connection(settings, tenant_id) as conn:
        return (
            conn.execute(
                sa.text(
                    "SELECT page, suppressed_by, would_suppress FROM decisions"
                    " WHERE alert_id = :alert_id ORDER BY id DESC LIMIT 1"
                ),
                {"alert_id": alert_id},
            )
            .one()
            ._mapping
        )


def latest_alert(client: Any, tenant: TenantHandle) -> dict[str, Any]:
    items = client.get("/v1/alerts", headers=tenant.auth, params={"limit": 1}).json()["items"]
    return dict(items[0])


def test_accepted_tune_is_a_silence_that_suppresses_only_in_strict_mode(
    client, tenant: TenantHandle, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker, "CONFIG_TTL_SECONDS", 0.0)
    tenant.integration("custom", SECRET)
    send(client, tenant, blips())
    run_suggestions(tenant.runtime.store, tenant.id)
    [tune] = suggestions(client, tenant)
    response = client.post(f"/v1/suggestions/{tune['id']}/accept", headers=tenant.auth)
    assert response.status_code == 200, response.text
    verdict = response.json()
    rule = verdict["rule"]
    assert rule["kind"] == "silence" and rule["author"] == f"suggestion:{tune['id']}"
    assert rule["matchers"] == tune["proposal"]["matchers"]
    assert tune["title"] in rule["comment"]
    assert "Governance is audit" in verdict["note"]
    _, rules = tenant.runtime.store.tenant_config(tenant.id)
    [silence] = rules.silences
    assert silence.id == rule["id"] and silence.ends_at is not None
    assert timedelta(days=29) < silence.ends_at - datetime.now(UTC) <= timedelta(days=30)

    # Audit mode: the silence (active from its acceptance on) only says it would
    # suppress; the alert still pages.
    at = datetime.now(UTC) + timedelta(seconds=1)
    send(client, tenant, fired("CPU blip", "web", at, None, fingerprint="cpu-blip"))
    first = latest_alert(client, tenant)
    row = decision_of(settings, tenant.id, first["id"])
    assert (row["page"], row["suppressed_by"], row["would_suppress"]) == (1, None, silence.id)

    # Strict mode: it suppresses.
    tenant.runtime.store.update_settings(tenant.id, {"governance_mode": "strict"})
    resolve = fired("CPU blip", "web", at, timedelta(seconds=30), fingerprint="cpu-blip")[1:]
    send(client, tenant, resolve)
    later = at + timedelta(minutes=2)  # a new occurrence, within believable clock skew
    send(client, tenant, fired("CPU blip", "web", later, None, fingerprint="cpu-blip"))
    second = latest_alert(client, tenant)
    assert second["id"] != first["id"]
    row = decision_of(settings, tenant.id, second["id"])
    assert (row["page"], row["suppressed_by"]) == (0, silence.id)


def test_scheduler_runs_the_job_periodically_and_stops(tmp_path: Path) -> None:
    with running(tmp_path / "a", suggest_interval_seconds=0.05) as (runtime, client):
        tenant = new_tenant(runtime)
        tenant.integration("custom", SECRET)
        send(client, tenant, blips())
        deadline = time.monotonic() + 10
        while not suggestions(client, tenant):
            assert time.monotonic() < deadline, "the scheduler never ran the job"
            time.sleep(0.02)
        assert runtime.scheduler is not None and runtime.scheduler.runs >= 1
    assert runtime.scheduler is None  # stopped with the runtime
    with running(tmp_path / "b", suggest_interval_seconds=0) as (runtime, _):
        assert runtime.scheduler is None


@contextlib.contextmanager
def blips_sent_without_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, Any, TenantHandle]]:
    """A runtime on the database the CLI reads, its own scheduled job off, and a tenant
    whose custom integration was sent ``blips()``."""
    data = tmp_path / "data"
    overrides = cli_environment(monkeypatch, data)
    with running(data, suggest_interval_seconds=0, **overrides) as (runtime, client):
        tenant = new_tenant(runtime)
        tenant.integration("custom", SECRET)
        send(client, tenant, blips())
        yield runtime, client, tenant


def test_a_scheduled_pass_runs_in_its_own_process_beside_serves_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``serve``'s child runs each pass as ``dd0c-alert cron-pass``: the in-process job
    is off here, so the suggestion can only come from that process."""
    with blips_sent_without_the_job(tmp_path, monkeypatch) as (runtime, client, tenant):
        scheduler = Scheduler(runtime.store, 0.05, runtime.archive, separate_process=True)
        scheduler.start()
        try:
            deadline = time.monotonic() + 60
            while scheduler.runs < 1:  # counted once the process exited cleanly
                assert time.monotonic() < deadline, "no pass ran in a process of its own"
                time.sleep(0.05)
        finally:
            scheduler.stop()
        assert not scheduler.is_alive()
        [found] = suggestions(client, tenant)
        assert found["kind"] == "tune"


def test_cli_suggest_runs_the_job_and_prints_open_suggestions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with blips_sent_without_the_job(tmp_path, monkeypatch) as (_, _, tenant):
        pass
    runner = CliRunner()
    result = runner.invoke(cli_app, ["suggest", "--tenant", tenant.id, "--json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.output)
    assert item["kind"] == "tune" and item["status"] == "open"
    result = runner.invoke(cli_app, ["suggest", "--tenant", tenant.id])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{item['id']}  tune ")
    assert "fired 12 times this week" in result.output
    result = runner.invoke(cli_app, ["suggest", "--tenant", "nope"])
    assert result.exit_code != 0 and "no tenant" in result.output
