"""Retention: the scheduled jobs delete what is older than the retention period, records
and raw payloads, for each tenant, and keep what is still going on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import structlog

from conftest import TenantHandle, drain, tenant_connection
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.cron import Scheduler
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.ports import AlertFilter
from dd0c_alert.storage.retention import purge_tenant
from dd0c_alert.storage.tenancy import scope_user
from test_deliveries_api import deliveries_for
from test_smoke_custom import sign
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


def _delivery_rows(settings: Settings, tenant_id: str) -> dict[str, int]:
    with tenant_connection(settings, tenant_id) as conn:
        return {
            table.name: conn.execute(
                sa.select(sa.func.count()).where(table.c.tenant_id == tenant_id)
            ).scalar_one()
            for table in (t.deliveries, t.delivery_attempts)
        }


def test_deliveries_and_their_attempts_go_with_their_incident(
    client, tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """Every page, mail and webhook left a delivery row and a row per try, destination
    and error text included, for ever after their incident was purged. They go once
    their incident has gone; a kept incident keeps its own (its living message is
    updated through them)."""
    tenant.integration("custom", SECRET)
    send(client, tenant, fired("Disk full", "db", now - timedelta(hours=2), timedelta(minutes=5)))
    send(client, tenant, fired("CPU hot", "web", now - timedelta(minutes=10), None))
    incidents = {a["title"]: a["incident_id"] for a in alerts_of(runtime, tenant.id)}
    for incident_id in incidents.values():
        deliveries_for(runtime, tenant, incident_id)  # 3 deliveries, one try each
    assert _delivery_rows(settings, tenant.id) == {"deliveries": 6, "delivery_attempts": 6}

    done = runtime.store.purge_expired(tenant.id, now + timedelta(days=1))
    assert (done["incidents"], done["deliveries"], done["delivery_attempts"]) == (1, 3, 3)
    assert _delivery_rows(settings, tenant.id) == {"deliveries": 3, "delivery_attempts": 3}
    [kept] = {d["incident_id"] for d in _deliveries_listed(client, tenant)}
    assert kept == incidents["CPU hot"]


def _deliveries_listed(client: Any, tenant: TenantHandle) -> list[dict[str, Any]]:
    answer = client.get("/v1/deliveries", headers=tenant.auth)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def test_dead_letters_and_the_queues_copy_of_them_go_at_the_cutoff(
    client, tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """A dead-lettered event is kept twice on PostgreSQL: the ``dead_letters`` row and
    pgmq's archived message, body and headers included. Retention removed the first
    only; the archive grew for ever."""
    tenant.integration("custom", SECRET)
    body = b'{"not": "an alert"}'
    answer = client.post(f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body))
    assert answer.status_code == 202, answer.text
    drain(runtime)
    assert _dead_kept(settings, tenant.id) == {"dead_letters": 1, "queue_archive": 1}
    runtime.store.purge_expired(tenant.id, now - timedelta(days=1))
    assert _dead_kept(settings, tenant.id) == {"dead_letters": 1, "queue_archive": 1}
    done = runtime.store.purge_expired(tenant.id, now + timedelta(days=1))
    assert done["dead_letters"] == 1
    assert _dead_kept(settings, tenant.id) == {"dead_letters": 0, "queue_archive": 0}


def _dead_kept(settings: Settings, tenant_id: str) -> dict[str, int]:
    """Dead letters, and on PostgreSQL pgmq's archived messages (as many: SQLite's
    queue keeps no copy), of the tenant."""
    dl = t.dead_letters
    with tenant_connection(settings, tenant_id) as conn:
        letters = conn.execute(
            sa.select(sa.func.count()).where(dl.c.tenant_id == tenant_id)
        ).scalar_one()
        archived = letters
        if conn.dialect.name == "postgresql":
            archived = conn.execute(
                sa.text("SELECT count(*) FROM pgmq.a_dd0c_ingest WHERE message->>'tenant_id' = :t"),
                {"t": tenant_id},
            ).scalar_one()
    return {"dead_letters": letters, "queue_archive": archived}


def test_refresh_tokens_expired_before_the_cutoff_go(
    tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """Each renewal of a sign-in adds a refresh token row, the spent one kept (to spot a
    stolen copy); nothing removed them. Those expired before the cutoff go; a live one
    still renews."""
    accounts = runtime.store.accounts()
    user = accounts.create_user("ann@example.com", "not-a-real-hash")
    accounts.add_member(tenant.id, user.id, "owner")
    accounts.issue_refresh(tenant.id, user.id, timedelta(seconds=-1))  # expired
    live = accounts.issue_refresh(tenant.id, user.id, timedelta(days=30))
    rt = t.refresh_tokens

    def count() -> int:
        with tenant_connection(settings, tenant.id) as conn:
            return int(
                conn.execute(sa.select(sa.func.count()).where(rt.c.tenant_id == tenant.id)).scalar()
            )

    assert count() == 2
    assert runtime.store.purge_expired(tenant.id, now - timedelta(days=1))["refresh_tokens"] == 0
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert runtime.store.purge_expired(tenant.id, later)["refresh_tokens"] == 1
    assert count() == 1
    assert accounts.rotate_refresh(live.token, timedelta(days=30)).outcome == "ok"


def _resets_of(settings: Settings, tenant_id: str, user_id: str) -> int:
    """The user's password reset rows (visible on PostgreSQL only to the user's scope)."""
    pr = t.password_resets
    with tenant_connection(settings, tenant_id) as conn:
        scope_user(conn, user_id)
        return int(
            conn.execute(sa.select(sa.func.count()).where(pr.c.user_id == user_id)).scalar_one()
        )


def test_password_resets_expired_before_the_cutoff_go_and_stay_refused(
    client, tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """Every forgotten-password request left a row for ever. The members' resets that
    expired before the cutoff go, used or not, a batch per transaction under each
    member's own scope; their links stay refused (401, not a new password); a live one
    still works; a user of another tenant keeps theirs to that tenant's pass."""
    accounts = runtime.store.accounts()
    ann = accounts.create_user("ann@example.com", "not-a-real-hash")
    accounts.add_member(tenant.id, ann.id, "owner")
    other = runtime.store.create_tenant("other").id
    bob = accounts.create_user("bob@example.com", "not-a-real-hash")
    accounts.add_member(other, bob.id, "owner")
    expired = [accounts.create_reset(ann.id, timedelta(seconds=-1)) for _ in range(2)]
    used = accounts.create_reset(ann.id, timedelta(seconds=1))
    assert accounts.spend_reset(used) == ann.id
    live = accounts.create_reset(ann.id, timedelta(days=1))
    accounts.create_reset(bob.id, timedelta(seconds=-1))

    assert runtime.store.purge_expired(tenant.id, now - timedelta(days=1))["password_resets"] == 0
    assert _resets_of(settings, tenant.id, ann.id) == 4
    url = normalise_database_url(settings.resolved_database_url)
    engine, read_engine = sa.create_engine(url), sa.create_engine(url)
    later = datetime.now(UTC) + timedelta(hours=1)  # past every expiry but the live one's
    try:
        done = purge_tenant(engine, read_engine, tenant.id, later, batch=2)
    finally:
        engine.dispose()
        read_engine.dispose()
    assert done["password_resets"] == 3
    assert _resets_of(settings, tenant.id, ann.id) == 1
    assert _resets_of(settings, other, bob.id) == 1
    for token in (*expired, used):
        answer = client.post("/v1/auth/reset", json={"token": token, "password": "brand new 1 x"})
        assert answer.status_code == 401, answer.text
    assert accounts.spend_reset(live) == ann.id


def test_invitations_accepted_or_expired_before_the_cutoff_go_and_stay_refused(
    client, tenant: TenantHandle, runtime: Runtime, settings: Settings, now: datetime
) -> None:
    """Every invitation left a row for ever. One accepted or expired before the cutoff
    goes; its link stays refused (401, no membership); a pending one stays and can
    still be accepted; another tenant's are its own pass's."""
    accounts = runtime.store.accounts()
    other = runtime.store.create_tenant("other").id
    week = timedelta(days=7)
    expired, _ = accounts.create_invitation(tenant.id, "a@x.io", "viewer", "t", -week)
    accepted, _ = accounts.create_invitation(tenant.id, "b@x.io", "viewer", "t", week)
    assert accounts.accept_invitation(accepted, "not-a-real-hash") is not None
    pending, kept = accounts.create_invitation(tenant.id, "c@x.io", "viewer", "t", week)
    accounts.create_invitation(other, "d@x.io", "viewer", "t", -week)

    assert runtime.store.purge_expired(tenant.id, now - timedelta(days=8))["invitations"] == 0
    assert len(accounts.invitations(tenant.id)) == 3
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert runtime.store.purge_expired(tenant.id, later)["invitations"] == 2
    assert [i.id for i in accounts.invitations(tenant.id)] == [kept.id]
    assert len(accounts.invitations(other)) == 1
    for token in (expired, accepted):
        answer = client.post(
            "/v1/invitations/accept", json={"token": token, "password": "brand new 1 x"}
        )
        assert answer.status_code == 401, answer.text
    assert accounts.user_by_email("a@x.io") is None
    assert accounts.accept_invitation(pending, "not-a-real-hash") is not None
