"""The scenario suite (data/*.json, described in scenario_suite.py), end to end: each step
is a signed ``custom`` webhook through the real app and worker, processed before the next
is sent; then the incidents in the database are compared with the expected ones. The same
files also run through the pure engine alone, which is what bench/correlation.py measures.

Correlation runs on event time but also asks how late a notification was delivered, so
each request must be received at the moment its scenario says. The ingest service's clock
is set to that moment while the request is sent: the receive time it stamps, and the
signature timestamp it checks, are the scenario's delivery time.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from scenario_suite import Incident, Scenario, all_scenarios, mismatches, report, run_in_memory

from conftest import drain
from dd0c_alert.config import Settings
from dd0c_alert.pipeline import ingest
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.tenancy import scope
from test_smoke_custom import sign

SCENARIOS = all_scenarios()
SECRET = "scenario-secret"


class DeliveryClock:
    """Stands in for the ingest module's ``time``: ``time()`` answers the scenario's
    delivery moment, everything else is the real module."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[DeliveryClock]:
    fake = DeliveryClock()
    monkeypatch.setattr(ingest, "time", fake)
    yield fake


def test_every_scenario_of_the_issue_is_there() -> None:
    assert {s.name for s in SCENARIOS} >= {
        "cascade",
        "flapping",
        "deploy_storm",
        "concurrent",
        "duplicates",
        "late_arrivals",
        "resolve_sequences",
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_through_the_webhook(
    scenario: Scenario, client: Any, runtime: Runtime, settings: Settings, clock: DeliveryClock
) -> None:
    base = datetime.fromtimestamp(int(time.time()) // 60 * 60 - 4 * 3600, UTC)
    tenants = _tenants(runtime, scenario)
    for n, step in enumerate(scenario.steps):
        body = step.body(base)
        clock.now = base.timestamp() + step.at
        headers = {"Content-Type": "application/json", **sign(SECRET, body, str(int(clock.now)))}
        if step.idempotency_key is not None:
            headers["Idempotency-Key"] = step.idempotency_key
        response = client.post(
            f"/v1/wh/{tenants[step.tenant]}/custom", content=body, headers=headers
        )
        assert response.status_code == step.expect_status, (
            f"step {n} of {scenario.name} (delivered at +{step.at:g} s): {response.text}"
        )
        drain(runtime)
    _check(scenario, stored_incidents(settings.resolved_database_url, tenants))


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_through_the_pure_engine(scenario: Scenario) -> None:
    _check(scenario, run_in_memory(scenario))


def _check(scenario: Scenario, actual: list[Incident]) -> None:
    if mismatches(scenario, actual):
        pytest.fail(report(scenario, actual), pytrace=False)


def _tenants(runtime: Runtime, scenario: Scenario) -> dict[str, str]:
    """Scenario tenant name -> tenant id, each with a custom integration, its settings
    and its topology."""
    store = runtime.store
    ids: dict[str, str] = {}
    for name, (overrides, dependencies) in scenario.tenants.items():
        tenant_id = ids[name] = store.create_tenant(f"{scenario.name}-{name}").id
        store.create_integration(tenant_id, "custom", "custom", SECRET)
        if overrides:
            store.update_settings(tenant_id, overrides)
        if dependencies:
            store.set_dependencies(tenant_id, dependencies)
    return ids


def stored_incidents(url: str, tenants: dict[str, str]) -> list[Incident]:
    """The live incidents of each tenant as stored: alert occurrences by name, merges
    followed, and how many decisions paged."""
    engine = sa.create_engine(normalise_database_url(url))
    found: list[Incident] = []
    try:
        for name, tenant_id in tenants.items():
            with engine.begin() as conn:
                scope(conn, tenant_id)
                found += _tenant_incidents(conn, name, tenant_id)
    finally:
        engine.dispose()
    return found


def _tenant_incidents(conn: sa.Connection, name: str, tenant_id: str) -> list[Incident]:
    i, a, d = t.incidents, t.alerts, t.decisions
    rows = conn.execute(sa.select(i).where(i.c.tenant_id == tenant_id)).all()
    merged_into = {row.id: row.merged_into for row in rows if row.merged_into}

    def final(incident_id: str) -> str:
        while incident_id in merged_into:
            incident_id = merged_into[incident_id]
        return incident_id

    live = {
        row.id: Incident(
            tenant=name,
            alerts=[],
            root=row.probable_root,
            deploys=tuple(sorted(deploy["version"] for deploy in row.deploys)),
            status=row.status,
            pages=0,
        )
        for row in rows
        if row.merged_into is None
    }
    for labels, incident_id in conn.execute(
        sa.select(a.c.labels, a.c.incident_id).where(a.c.tenant_id == tenant_id)
    ):
        assert incident_id, f"alert {labels.get('name')} of tenant {name} has no incident"
        live[final(incident_id)].alerts.append(labels["name"])
    for incident_id, count in conn.execute(
        sa.select(d.c.incident_id, sa.func.count())
        .where(d.c.tenant_id == tenant_id, d.c.page.is_(True))
        .group_by(d.c.incident_id)
    ):
        live[final(incident_id)].pages += count
    return list(live.values())
