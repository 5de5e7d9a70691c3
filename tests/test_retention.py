"""Retention: the scheduled jobs delete what is older than the retention period, records
and raw payloads, for each tenant, and keep what is still going on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conftest import TenantHandle
from dd0c_alert.pipeline.cron import Scheduler
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage.ports import AlertFilter
from test_suggestions_api import SECRET, fired, send

NOW = datetime.now(UTC)
ENDED = fired("Disk full", "db", NOW - timedelta(hours=2), timedelta(minutes=5))


def alerts_of(runtime: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    return runtime.store.list_alerts(tenant_id, AlertFilter(), 100, None).items


def test_purge_deletes_what_ended_and_keeps_what_fires(
    client, tenant: TenantHandle, runtime: Runtime
) -> None:
    other = TenantHandle(
        runtime.store.create_tenant("other").id, "", runtime
    )  # untouched by tenant's purge
    for handle in (tenant, other):
        handle.integration("custom", SECRET)
        send(
            client, handle, fired("Disk full", "db", NOW - timedelta(hours=2), timedelta(minutes=5))
        )
    send(client, tenant, fired("CPU hot", "web", NOW - timedelta(minutes=10), None))
    raw = client.get(
        f"/v1/alerts/{alerts_of(runtime, tenant.id)[0]['id']}/raw", headers=tenant.auth
    )
    assert raw.status_code == 200

    # Everything is "old" to a cutoff in the future.
    done = runtime.store.purge_expired(tenant.id, NOW + timedelta(days=1))
    assert done["alerts"] == 1  # the resolved one; the firing alert stays
    assert done["incidents"] == 1  # the resolved alert's incident, now empty
    assert done["decisions"] == 2  # the resolved alert's; the firing one keeps its own
    [kept] = alerts_of(runtime, tenant.id)
    assert (kept["title"], kept["status"]) == ("CPU hot", "firing")
    [incident] = client.get("/v1/incidents", headers=tenant.auth).json()["items"]
    assert incident["id"] == kept["incident_id"]
    # The other tenant keeps everything.
    assert [a["title"] for a in alerts_of(runtime, other.id)] == ["Disk full"]

    # Raw payloads go by day folder; what was received today is gone with a cutoff
    # of tomorrow, and the API says so.
    assert runtime.archive.purge_before(tenant.id, NOW + timedelta(days=1)) >= 1
    gone = client.get(f"/v1/alerts/{kept['id']}/raw", headers=tenant.auth)
    assert gone.status_code == 404
    assert (
        client.get(
            f"/v1/alerts/{alerts_of(runtime, other.id)[0]['id']}/raw", headers=tenant.auth
        ).status_code
        == 404
    )  # not this tenant's alert: 404 by tenancy, not by purge
    assert runtime.store.alert_decision(tenant.id, kept["id"]) is not None
    assert runtime.store.purge_expired(tenant.id, NOW + timedelta(days=1)) == {
        "alerts": 0,
        "decisions": 0,
        "deploys": 0,
        "dead_letters": 0,
        "incidents": 0,
    }


def test_the_scheduled_jobs_purge_each_tenant(
    client, tenant: TenantHandle, runtime: Runtime
) -> None:
    tenant.integration("custom", SECRET)
    send(client, tenant, ENDED)
    kept = Scheduler(runtime.store, 3600, runtime.archive, retention=timedelta(days=30))
    kept.run_once()
    assert len(alerts_of(runtime, tenant.id)) == 1  # two hours old: within 30 days
    # A negative retention puts the cutoff in the future: everything ended is old.
    purging = Scheduler(runtime.store, 3600, runtime.archive, retention=timedelta(days=-1))
    purging.run_once()
    assert alerts_of(runtime, tenant.id) == []
