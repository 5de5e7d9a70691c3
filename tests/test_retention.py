"""Retention: the scheduled jobs delete what is older than the retention period, records
and raw payloads, for each tenant, and keep what is still going on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from conftest import TenantHandle, tenant_connection
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.cron import Scheduler
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.ports import AlertFilter
from dd0c_alert.storage.retention import purge_tenant
from test_suggestions_api import SECRET, fired, send


@pytest.fixture
def now() -> datetime:
    """The clock as each test starts, not as the module was collected: a suite that
    crossed midnight in between moved the day-granular cutoffs (archive folders, daily
    rollups) from under the tests."""
    return datetime.now(UTC)


def alerts_of(runtime: Runtime, tenant_id: str) -> list[dict[str, Any]]:
    return runtime.store.list_alerts(tenant_id, AlertFilter(), 100, None).items


def test_purge_deletes_what_ended_and_keeps_what_fires(
    client, tenant: TenantHandle, runtime: Runtime, now: datetime
) -> None:
    other = TenantHandle(
        runtime.store.create_tenant("other").id, "", runtime
    )  # untouched by tenant's purge
    for handle in (tenant, other):
        handle.integration("custom", SECRET)
        send(
            client, handle, fired("Disk full", "db", now - timedelta(hours=2), timedelta(minutes=5))
        )
    send(client, tenant, fired("CPU hot", "web", now - timedelta(minutes=10), None))
    raw = client.get(
        f"/v1/alerts/{alerts_of(runtime, tenant.id)[0]['id']}/raw", headers=tenant.auth
    )
    assert raw.status_code == 200

    # Everything is "old" to a cutoff in the future.
    done = runtime.store.purge_expired(tenant.id, now + timedelta(days=1))
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
    assert runtime.archive.purge_before(tenant.id, now + timedelta(days=1)) >= 1
    gone = client.get(f"/v1/alerts/{kept['id']}/raw", headers=tenant.auth)
    assert gone.status_code == 404
    assert (
        client.get(
            f"/v1/alerts/{alerts_of(runtime, other.id)[0]['id']}/raw", headers=tenant.auth
        ).status_code
        == 404
    )  # not this tenant's alert: 404 by tenancy, not by purge
    assert runtime.store.alert_decision(tenant.id, kept["id"]) is not None
    assert set(runtime.store.purge_expired(tenant.id, now + timedelta(days=1)).values()) == {0}


def test_the_scheduled_jobs_purge_each_tenant(
    client, tenant: TenantHandle, runtime: Runtime, now: datetime
) -> None:
    tenant.integration("custom", SECRET)
    send(client, tenant, fired("Disk full", "db", now - timedelta(hours=2), timedelta(minutes=5)))
    kept = Scheduler(runtime.store, 3600, runtime.archive, retention=timedelta(days=30))
    kept.run_once()
    assert len(alerts_of(runtime, tenant.id)) == 1  # two hours old: within 30 days
    # A negative retention puts the cutoff in the future: everything ended is old.
    purging = Scheduler(runtime.store, 3600, runtime.archive, retention=timedelta(days=-1))
    purging.run_once()
    assert alerts_of(runtime, tenant.id) == []


def test_a_pass_logs_where_its_time_went(
    client, tenant: TenantHandle, runtime: Runtime, now: datetime
) -> None:
    """One line per pass, with each step's seconds summed over the tenants: a queue
    lag during a pass is traced to the step that held the database."""
    tenant.integration("custom", SECRET)
    send(client, tenant, fired("Disk full", "db", now - timedelta(hours=2), timedelta(minutes=5)))
    with structlog.testing.capture_logs() as logs:
        Scheduler(runtime.store, 3600, runtime.archive, retention=timedelta(days=30)).run_once()
    [line] = [entry for entry in logs if entry["event"] == "cron_pass_finished"]
    steps = ("statistics", "retention", "top_days", "suggestions")
    assert line["tenants"] == len(runtime.store.list_tenants()) >= 1
    assert all(line[f"{step}_s"] >= 0 for step in steps)
    # Each figure is rounded to the millisecond: the steps' sum may exceed the total
    # by half a millisecond per rounded figure.
    rounding = 0.0005 * (len(steps) + 1)
    assert line["seconds"] >= sum(line[f"{step}_s"] for step in steps) - rounding


def _logs_and_counters(settings: Settings, tenant_id: str, times: list[datetime]) -> None:
    """An audit entry, a product event and rollup rows at each of ``times``."""
    with tenant_connection(settings, tenant_id) as conn:
        for n, at in enumerate(times):
            mine = {"tenant_id": tenant_id}
            conn.execute(
                t.audit_log.insert().values(
                    **mine,
                    id=f"audit-{tenant_id[-8:]}-{n}",
                    at=at,
                    actor="key:test",
                    action="silence.create",
                    target_type="silence",
                    target_id="s",
                    detail={},
                    client="127.0.0.1",
                )
            )
            conn.execute(
                t.product_events.insert().values(
                    **mine,
                    id=f"event-{tenant_id[-8:]}-{n}",
                    name="integration.created",
                    at=at,
                    detail={},
                )
            )
            hour = at.replace(minute=0, second=0, microsecond=0)
            conn.execute(
                t.rollups_hourly.insert().values(
                    **mine,
                    hour=hour,
                    service="db",
                    source="custom",
                    severity="high",
                    alerts=1,
                    incidents_opened=1,
                    pages=1,
                )
            )
            conn.execute(
                t.integration_stats.insert().values(
                    **mine,
                    integration_id="i",
                    hour=hour,
                    outcome="accepted",
                    count=1,
                    last_at=at,
                )
            )
            conn.execute(
                t.rollups_fingerprint_daily.insert().values(
                    **mine,
                    day=hour.replace(hour=0),
                    fingerprint="fp",
                    title="Disk full",
                    alerts=1,
                )
            )
            conn.execute(
                t.rollups_top_daily.insert().values(
                    **mine, day=hour.replace(hour=0), fingerprint="fp"
                )
            )


def _ages(settings: Settings, tenant_id: str, now: datetime) -> dict[str, list[int]]:
    """Per table, the age in calendar days of each row left. Calendar days, not elapsed
    ones: rows made a minute after a midnight are still that day's in the first minute
    after today's midnight."""
    columns = {
        "audit_log": t.audit_log.c.at,
        "product_events": t.product_events.c.at,
        "rollups_hourly": t.rollups_hourly.c.hour,
        "integration_stats": t.integration_stats.c.hour,
        "rollups_fingerprint_daily": t.rollups_fingerprint_daily.c.day,
        "rollups_top_daily": t.rollups_top_daily.c.day,
    }
    with tenant_connection(settings, tenant_id) as conn:
        return {
            name: sorted(
                (now.date() - at.date()).days
                for at in conn.execute(
                    sa.select(column).where(column.table.c.tenant_id == tenant_id)
                ).scalars()
            )
            for name, column in columns.items()
        }


def test_plan_retention_covers_audit_product_events_and_rollups(
    tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """A free tenant (7 days) loses its audit log, product events and noisiest
    fingerprints older than 7 days; its hourly counters stay for the 90-day analytics.
    A self-hosted tenant with no operator retention keeps everything."""
    runtime.store.product().set_plan(tenant.id, "free")
    kept = runtime.store.create_tenant("kept").id
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    times = [midnight - timedelta(days=d) + timedelta(minutes=1) for d in (100, 8, 6)]
    for tenant_id in (tenant.id, kept):
        _logs_and_counters(settings, tenant_id, times)
    Scheduler(runtime.store, 3600, runtime.archive).run_once()
    assert _ages(settings, tenant.id, now) == {
        "audit_log": [6],
        "product_events": [6],
        "rollups_hourly": [6, 8],
        "integration_stats": [6, 8],
        "rollups_fingerprint_daily": [6],
        "rollups_top_daily": [6],
    }
    everything = [6, 8, 100]
    assert _ages(settings, kept, now) == dict.fromkeys(_ages(settings, kept, now), everything)
    # Past 90 days counters go too: an operator retention of 30 days keeps 90 of them.
    done = runtime.store.purge_expired(kept, now - timedelta(days=30))
    assert done["rollups_hourly"] == 1 and done["audit_log"] == 1
    assert _ages(settings, kept, now)["rollups_hourly"] == [6, 8]


def test_rollups_go_in_transactions_of_a_bounded_size(
    tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """A day of per-fingerprint counts can hold a row for every alert of that day:
    they are deleted ``batch`` rows per statement, not a day at a time, so the worker
    never waits behind one huge delete for the write lock."""
    other = runtime.store.create_tenant("other").id
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = {midnight - timedelta(days=20): 5, midnight - timedelta(days=19): 4, midnight: 3}
    for tenant_id in (tenant.id, other):
        with tenant_connection(settings, tenant_id) as conn:
            for day, count in days.items():
                for n in range(count):
                    row = {"day": day, "fingerprint": f"fp-{n}", "title": "t", "alerts": 1}
                    conn.execute(
                        t.rollups_fingerprint_daily.insert().values(tenant_id=tenant_id, **row)
                    )
    url = normalise_database_url(settings.resolved_database_url)
    engine, read_engine = sa.create_engine(url), sa.create_engine(url)
    deleted: list[int] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def count(conn, cursor, statement: str, *_: Any) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("DELETE FROM rollups_fingerprint_daily"):
            deleted.append(cursor.rowcount)

    try:
        done = purge_tenant(engine, read_engine, tenant.id, midnight - timedelta(days=7), batch=2)
    finally:
        engine.dispose()
        read_engine.dispose()
    assert done["rollups_fingerprint_daily"] == 9
    assert sum(deleted) == 9 and max(deleted) == 2  # five statements: 2, 2, 2, 2, 1
    assert _ages(settings, tenant.id, now)["rollups_fingerprint_daily"] == [0, 0, 0]
    assert len(_ages(settings, other, now)["rollups_fingerprint_daily"]) == 12


def test_an_alert_stored_after_the_cutoff_stays_until_the_cutoff_passes_its_storing(
    client, tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """The purge looks only at ids minted before the cutoff (an index range, not the
    whole history): one last seen before the cutoff but stored after it (a replayed
    dead letter, a backlog) goes once the cutoff passes the moment it was stored."""
    tenant.integration("custom", SECRET)
    send(client, tenant, fired("Disk full", "db", now - timedelta(hours=2), timedelta(minutes=5)))
    [alert] = alerts_of(runtime, tenant.id)
    with tenant_connection(settings, tenant.id) as conn:
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.id == alert["id"])
            .values(last_seen_at=now - timedelta(hours=3))
        )
    assert runtime.store.purge_expired(tenant.id, now - timedelta(hours=1))["alerts"] == 0
    assert [a["id"] for a in alerts_of(runtime, tenant.id)] == [alert["id"]]
    later = datetime.now(UTC) + timedelta(seconds=1)  # past the moment it was stored
    assert runtime.store.purge_expired(tenant.id, later)["alerts"] == 1
    assert alerts_of(runtime, tenant.id) == []
