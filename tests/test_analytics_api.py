"""Analytics from the worker's rollups checked against values worked out by hand on a
small history, the top noisy fingerprints through each day's top list, usage against
the plan, and the free plan's quota (both modes)."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from conftest import TenantHandle, clock_at_test_start, drain, tenant_connection
from dd0c_alert.config import Settings
from dd0c_alert.pipeline.cron import Scheduler
from dd0c_alert.pipeline.runtime import Runtime
from dd0c_alert.storage import schema as t
from dd0c_alert.storage.engine import normalise_database_url
from dd0c_alert.storage.sql import SqlStore
from dd0c_alert.storage.tenancy import reading, scoped
from dd0c_alert.storage.top_daily import K
from test_smoke_custom import sign

SECRET = "s3cret"


def _now() -> datetime:
    return datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


NOW = _now()
_clock = clock_at_test_start(_now)  # NOW again as each test starts


def at(days: int, minutes: int = 0) -> str:
    return (NOW - timedelta(days=days) + timedelta(minutes=minutes)).isoformat()


def send(client: TestClient, tenant: TenantHandle, items: list[dict[str, Any]]) -> Any:
    body = json.dumps(items).encode()
    while True:
        response = client.post(
            f"/v1/wh/{tenant.id}/custom", content=body, headers=sign(SECRET, body)
        )
        if response.status_code == 429 and response.json()["error"] == "rate_limited":
            time.sleep(0.05)
            continue
        return response


def get(client: TestClient, tenant: TenantHandle, path: str) -> Any:
    response = client.get(path, headers=tenant.auth)
    assert response.status_code == 200, response.text
    return response.json()


def test_analytics_match_a_history_worked_out_by_hand(
    client: TestClient, tenant: TenantHandle, runtime: Runtime, settings: Settings
) -> None:
    tenant.integration("custom", SECRET)
    api = [
        {"title": f"api error {n}", "service": "api", "severity": "high", "started_at": at(2, n)}
        for n in range(3)
    ]
    db = [
        {
            "title": "db down",
            "service": "db",
            "severity": "critical",
            "started_at": at(1),
            "fingerprint": "db-down",
        },
        {"title": "db slow", "service": "db", "severity": "critical", "started_at": at(1, 1)},
    ]
    repeat = [{**db[0], "started_at": at(1, 2)}]  # folds into the firing "db down"
    old = [{"title": "ancient", "service": "api", "severity": "low", "started_at": at(40)}]
    for items in (api, db, repeat, old):
        assert send(client, tenant, items).status_code == 202
        drain(runtime)
    items = get(client, tenant, "/v1/incidents")["items"]
    assert len(items) == 3  # api, db, ancient
    recent = [i for i in items if i["title"] != "ancient"]
    for incident in recent:
        assert client.post(f"/v1/incidents/{incident['id']}/ack", headers=tenant.auth).is_success
    time.sleep(0.05)
    db_incident = next(i for i in recent if "db" in i["services"])
    assert client.post(f"/v1/incidents/{db_incident['id']}/resolve", headers=tenant.auth).is_success
    details = {i["id"]: get(client, tenant, f"/v1/incidents/{i['id']}") for i in recent}
    with tenant_connection(settings, tenant.id) as conn:  # as correlation records a flap
        conn.execute(
            t.incidents.update()
            .where(t.incidents.c.id == db_incident["id"])
            .values(flapping=["custom:db-down"])
        )

    found = get(client, tenant, "/v1/analytics?window=7d")
    # By hand: 3 api alerts + 2 db alerts + 1 repeat = 6 alert events, 2 incidents.
    assert found["window"] == "7d"
    assert found["alerts"] == 6
    assert found["incidents"] == 2
    assert found["pages"] == sum(1 for i in recent if i["paged"])
    assert found["noise_reduction"] == round(1 - 2 / 6, 4)
    assert found["by_service"] == {"api": 3, "db": 3}
    assert found["by_severity"] == {"critical": 3, "high": 3}
    assert found["by_source"] == {"custom": 6}
    days = {d["day"]: (d["alerts"], d["incidents"]) for d in found["daily"]}
    day = lambda n: (NOW - timedelta(days=n)).strftime("%Y-%m-%d")  # noqa: E731
    # The repeat counts when it arrived (today), the others at their own times.
    assert days == {day(2): (3, 1), day(1): (2, 1), day(0): (1, 0)}
    assert found["top_noisy"][0] == {
        "fingerprint": "custom:db-down",
        "title": "db down",
        "count": 2,
    }
    assert len(found["top_noisy"]) == 5  # 3 api + db down + db slow

    def seconds(a: str, b: str) -> float:
        return (datetime.fromisoformat(a) - datetime.fromisoformat(b)).total_seconds()

    mtta = sorted(seconds(d["acknowledged_at"], d["opened_at"]) for d in details.values())
    assert (
        found["mtta_seconds"]["median"] == round(statistics.median(mtta), 3)
        or abs(found["mtta_seconds"]["median"] - statistics.median(mtta)) < 0.01
    )
    assert abs(found["mtta_seconds"]["p90"] - mtta[-1]) < 0.01  # nearest rank of 2 = the 2nd
    d = details[db_incident["id"]]
    mttr = seconds(d["resolved_at"], d["opened_at"])
    assert abs(found["mttr_seconds"]["median"] - mttr) < 0.01
    assert [(f["incident_id"], f["fingerprints"]) for f in found["flapping"]] == [
        (db_incident["id"], ["custom:db-down"])
    ]  # only the incident that flapped (through its partial index)
    assert found["suggestions"] == {"accepted": 0, "dismissed": 0, "open": 0}
    assert found["deliveries"] == {"delivered": 0, "failed": 0}

    only_db = get(client, tenant, "/v1/analytics?window=30d&service=db")
    assert (only_db["alerts"], only_db["incidents"], only_db["by_service"]) == (3, 1, {"db": 3})
    assert [(n["fingerprint"], n["count"]) for n in only_db["top_noisy"]] == [
        ("custom:db-down", 2),
        (next(n["fingerprint"] for n in found["top_noisy"] if n["title"] == "db slow"), 1),
    ]  # the service's own, not the tenant's
    assert only_db["mttr_seconds"]["median"] is not None
    wide = get(client, tenant, "/v1/analytics?window=90d")
    assert wide["alerts"] == 7 and wide["incidents"] == 3
    bad = client.get("/v1/analytics?window=1y", headers=tenant.auth)
    assert bad.status_code == 422


def test_a_repeat_counts_when_it_arrives_not_when_its_alert_began(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    """An alert firing for weeks, re-sent every few hours (Alertmanager's
    repeat_interval), is noise now: each re-send is in the window it arrived in. At the
    occurrence's start they all went to a day weeks back, outside every window."""
    tenant.integration("custom", SECRET)
    began = {"title": "disk filling", "service": "db", "fingerprint": "disk", "started_at": at(40)}
    for _ in range(3):
        assert send(client, tenant, [began]).status_code == 202
        drain(runtime)
    week = get(client, tenant, "/v1/analytics?window=7d")
    assert week["alerts"] == 2  # the two re-sends; the first notification is 40 days old
    assert [(n["fingerprint"], n["count"]) for n in week["top_noisy"]] == [("custom:disk", 2)]
    assert week["incidents"] == 0  # the incident opened 40 days ago
    assert get(client, tenant, "/v1/analytics?window=90d")["alerts"] == 3


def test_a_window_is_whole_utc_days_in_every_figure(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    """``window=7d`` is today and the six UTC days before it, in the totals, the daily
    list and the noisiest alerts alike: an alert half an hour before that first
    midnight counts nowhere (the window used to start at now - 7 days, counting it in
    the totals, and the noisiest alerts read the whole day before the window)."""
    tenant.integration("custom", SECRET)
    first_midnight = NOW.replace(hour=0, minute=0) - timedelta(days=6)
    before = {"title": "before", "fingerprint": "before", "service": "edge", "severity": "low"}
    inside = {"title": "inside", "fingerprint": "inside", "service": "edge", "severity": "low"}
    history = [
        {**before, "started_at": (first_midnight - timedelta(minutes=30)).isoformat()},
        {**inside, "started_at": (first_midnight + timedelta(minutes=10)).isoformat()},
    ]
    assert send(client, tenant, history).status_code == 202
    drain(runtime)

    found = get(client, tenant, "/v1/analytics?window=7d")
    assert found["alerts"] == 1 and found["incidents"] == 1
    assert found["daily"] == [
        {"day": first_midnight.date().isoformat(), "alerts": 1, "incidents": 1, "pages": 1}
    ]
    assert [n["fingerprint"] for n in found["top_noisy"]] == ["custom:inside"]
    assert sum(d["alerts"] for d in found["daily"]) == found["alerts"]
    assert get(client, tenant, "/v1/analytics?window=30d")["alerts"] == 2


def _fingerprint_days(
    settings: Settings, tenant_id: str, counts: dict[tuple[int, str], int]
) -> None:
    """Daily fingerprint counts (and each day's total) as the worker leaves them, keyed
    by (days ago, fingerprint)."""
    midnight = NOW.replace(hour=0, minute=0)
    totals: dict[int, int] = {}
    with tenant_connection(settings, tenant_id) as conn:
        for (ago, fp), n in counts.items():
            day = midnight - timedelta(days=ago)
            row = {"tenant_id": tenant_id, "day": day, "fingerprint": fp, "title": fp, "alerts": n}
            conn.execute(t.rollups_fingerprint_daily.insert().values(row))
            totals[ago] = totals.get(ago, 0) + n
        for ago, n in totals.items():
            conn.execute(
                t.rollups_daily.insert().values(
                    tenant_id=tenant_id,
                    day=midnight - timedelta(days=ago),
                    dimension="all",
                    value="",
                    alerts=n,
                    incidents_opened=0,
                    pages=0,
                )
            )


def test_top_noisy_candidates_come_from_each_days_top_list_and_today(
    client: TestClient, tenant: TenantHandle, runtime: Runtime, settings: Settings
) -> None:
    """Past days are read through their top lists (a fingerprint below every day's top
    K is not a candidate, the documented approximation); today, which has no list yet,
    is read whole, and the counts reported are the window's exact sums."""
    past = (2, 3, 4)
    counts = {(ago, "loud"): 50 for ago in past} | {(ago, "spread"): 1 for ago in past}
    counts |= {(ago, f"busy-{ago}-{n:03d}"): 2 for ago in past for n in range(K)}
    _fingerprint_days(settings, tenant.id, counts)
    Scheduler(runtime.store, 3600).run_once()  # the scheduled jobs list the past days
    assert runtime.store.product().list_top_days(tenant.id) == 0  # each day is listed once
    with tenant_connection(settings, tenant.id) as conn:
        listed = conn.execute(sa.select(t.rollups_top_daily.c.fingerprint)).scalars().all()
    assert len(listed) == K * len(past) and "loud" in listed and "spread" not in listed

    def top() -> list[tuple[str, int]]:
        found = get(client, tenant, "/v1/analytics?window=7d")["top_noisy"]
        return [(x["fingerprint"], x["count"]) for x in found]

    assert top()[:2] == [("loud", 150), ("busy-2-000", 2)]  # "spread" (3) missed
    _fingerprint_days(settings, tenant.id, {(0, "new-today"): 30, (0, "spread"): 1})
    assert top()[:4] == [("loud", 150), ("new-today", 30), ("spread", 4), ("busy-2-000", 2)]


def test_top_noisy_candidates_are_the_k_best_by_their_listed_counts(
    client: TestClient, tenant: TenantHandle, runtime: Runtime, settings: Settings
) -> None:
    """Only the ``K`` fingerprints with the most alerts in the window's lists (and the
    ``K`` busiest of today) have their window counts summed: a fingerprint listed once
    with few alerts, and below the lists on its other days, is missed however large its
    total (the documented approximation that bounds the work)."""
    counts = {(2, "thin"): 2} | {(ago, "thin"): 2 for ago in (3, 4)}
    counts |= {(ago, f"busy-{ago}-{n:03d}"): 3 for ago in (3, 4) for n in range(K)}
    _fingerprint_days(settings, tenant.id, counts)
    Scheduler(runtime.store, 3600).run_once()
    with tenant_connection(settings, tenant.id) as conn:
        d = t.rollups_top_daily
        listed = dict(conn.execute(sa.select(d.c.fingerprint, d.c.alerts)).all())
    assert listed["thin"] == 2 and listed["busy-3-000"] == 3  # listed once, on day 2
    found = get(client, tenant, "/v1/analytics?window=7d")["top_noisy"]
    assert (found[0]["fingerprint"], found[0]["count"]) == ("busy-3-000", 3)
    assert "thin" not in {x["fingerprint"] for x in found}  # 6 in all, but ranked out


def test_api_reads_are_planned_for_their_values(
    runtime: Runtime, tenant: TenantHandle, settings: Settings
) -> None:
    """PostgreSQL: a read of the API or dashboard, and the worker's batch transaction,
    get plans for their own tenant, values and table sizes, never the generic plan of a
    prepared statement made while the tables were small; other writes keep the
    server's default."""
    engine = sa.create_engine(normalise_database_url(settings.resolved_database_url))
    try:
        if engine.dialect.name != "postgresql":
            with reading(engine, tenant.id) as conn:  # a plain read transaction
                assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
            return
        show = sa.text("SHOW plan_cache_mode")
        with reading(engine, tenant.id) as conn:
            assert conn.execute(show).scalar_one() == "force_custom_plan"
            assert conn.execute(sa.text("SELECT current_setting('app.tenant_id')")).scalar_one()
        with scoped(engine, tenant.id) as conn:
            assert conn.execute(show).scalar_one() == "auto"
        assert isinstance(runtime.store, SqlStore)
        with runtime.store.transaction([tenant.id]) as tx:
            assert tx._conn.execute(show).scalar_one() == "force_custom_plan"
    finally:
        engine.dispose()


def test_free_plan_is_warned_at_8000_and_refused_at_10000_alerts(
    client: TestClient, tenant: TenantHandle, runtime: Runtime
) -> None:
    tenant.integration("custom", SECRET)
    runtime.store.product().set_plan(tenant.id, "free")
    runtime.ingest.limits = replace(runtime.ingest.limits, quota_refresh_seconds=0)
    usage = get(client, tenant, "/v1/usage")
    assert (usage["plan"], usage["quota"], usage["retention_days"], usage["seats"]) == (
        "free",
        10_000,
        7,
        3,
    )
    bodies = iter(
        [
            {"title": f"disk {b}-{n}", "service": f"svc{n % 7}", "fingerprint": f"f{b}-{n}"}
            for n in range(100)
        ]
        for b in range(101)
    )
    for _ in range(79):
        assert send(client, tenant, next(bodies)).status_code == 202
    drain(runtime, timeout=120)
    usage = get(client, tenant, "/v1/usage")
    assert (usage["alerts"], usage["warning"]) == (7_900, False)
    assert send(client, tenant, next(bodies)).status_code == 202
    drain(runtime, timeout=60)
    usage = get(client, tenant, "/v1/usage")
    assert (usage["alerts"], usage["warning"], usage["percent"]) == (8_000, True, 80.0)
    [warning] = get(client, tenant, "/v1/events?name=quota.warning")["items"]
    assert warning["detail"]["alerts"] == 8_000 and warning["detail"]["quota"] == 10_000
    for _ in range(20):
        assert send(client, tenant, next(bodies)).status_code == 202
    drain(runtime, timeout=120)
    refused = send(client, tenant, next(bodies))
    assert refused.status_code == 429 and refused.json()["error"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) >= 1
    # Nothing else lost: every alert under the quota was processed.
    assert runtime.store.alerts_this_month(tenant.id) == 10_000
    assert get(client, tenant, "/v1/analytics?window=7d")["alerts"] == 10_000
    assert len(get(client, tenant, "/v1/events?name=quota.warning")["items"]) == 1
