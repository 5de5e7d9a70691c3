"""What the worker counts in its batch transaction: hourly rollups for analytics,
per-fingerprint daily counts (top noisy), the month's alerts (the quota), and the
onboarding steps the pipeline reaches (first alert, first correlated incident) with
their product events.

Per batch and tenant this is one ``executemany`` upsert per table, keyed by (hour,
service, source, severity) resp. (day, fingerprint), one upsert of the month's count,
one primary-key read of the tenant's plan, and, until the tenant's onboarding steps
are both done (remembered per process), one read of its steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dd0c_alert.correlation.dedup import Fold, FoldResult
from dd0c_alert.correlation.engine import event_time
from dd0c_alert.correlation.model import Decision
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.lru import LRUCache
from dd0c_alert.domain.plans import plan_named, quota, warning_threshold

from . import schema as t
from .bulk import upsert_adding

FIRST_ALERT = "first_alert_received"
FIRST_INCIDENT = "first_incident_correlated"
#: Notifications that repeat an occurrence count when they arrive: at the occurrence's
#: own time, an alert firing for weeks and re-sent every few hours counted on the day it
#: began, outside any window that shows the noise it makes now.
_REPEATS = frozenset({Fold.REPEAT, Fold.LATE_REPEAT, Fold.REPEAT_RESOLVE})
#: Tenants whose pipeline onboarding steps are both recorded: nothing to check again.
_onboarded: LRUCache[str, bool] = LRUCache(max_entries=100_000, ttl_seconds=24 * 3600)


def dimensions_of(service: str, source: str, severity: str) -> list[tuple[str, str]]:
    """The ``rollups_daily`` rows one hourly key adds to."""
    return [("all", ""), ("source", source), ("service", service[:256]), ("severity", severity)]


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def save_rollups(
    conn: sa.Connection,
    tenant_id: str,
    pairs: Sequence[tuple[FoldResult, Decision]],
    operator_quota: int,
    now: datetime | None = None,
) -> None:
    """Count one tenant's batch (its alerts' folds and decisions)."""
    if not pairs:
        return
    now = now or datetime.now(UTC)
    hourly: dict[tuple[datetime, str, str, str], list[int]] = {}
    daily: dict[tuple[datetime, str], tuple[str, int]] = {}
    # A batch's alerts share a few times: each one's hour and day are computed once.
    periods: dict[datetime, tuple[datetime, datetime]] = {}
    for fold, decision in pairs:
        alert = fold.alert
        at = fold.seen if fold.fold in _REPEATS else event_time(alert)
        period = periods.get(at)
        if period is None:
            hour = hour_of(at)
            period = periods[at] = (hour, hour.replace(hour=0))
        hour, day = period
        counts = hourly.setdefault((hour, alert.service, alert.source, alert.severity), [0, 0, 0])
        counts[0] += 1
        counts[1] += decision.outcome == "new_incident"
        counts[2] += decision.page
        key = (day, alert.fingerprint[:200])
        daily[key] = (alert.title, daily.get(key, ("", 0))[1] + 1)
    upsert_adding(
        conn,
        t.rollups_hourly,
        [
            {
                "tenant_id": tenant_id,
                "hour": hour,
                "service": service[:256],
                "source": source,
                "severity": severity,
                "alerts": c[0],
                "incidents_opened": c[1],
                "pages": c[2],
            }
            for (hour, service, source, severity), c in sorted(hourly.items())
        ],
        ("alerts", "incidents_opened", "pages"),
    )
    by_day: dict[tuple[datetime, str, str], list[int]] = {}
    for (hour, service, source, severity), c in hourly.items():
        day = hour.replace(hour=0)
        for dimension, value in dimensions_of(service, source, severity):
            total = by_day.setdefault((day, dimension, value), [0, 0, 0])
            for n in range(3):
                total[n] += c[n]
    upsert_adding(
        conn,
        t.rollups_daily,
        [
            {
                "tenant_id": tenant_id,
                "day": day,
                "dimension": dimension,
                "value": value,
                "alerts": c[0],
                "incidents_opened": c[1],
                "pages": c[2],
            }
            for (day, dimension, value), c in sorted(by_day.items())
        ],
        ("alerts", "incidents_opened", "pages"),
    )
    upsert_adding(
        conn,
        t.rollups_fingerprint_daily,
        [
            {"tenant_id": tenant_id, "day": day, "fingerprint": fp, "title": title, "alerts": n}
            for (day, fp), (title, n) in sorted(daily.items())
        ],
        ("alerts",),
        ("title",),
    )
    _count_month(conn, tenant_id, len(pairs), operator_quota, now)
    _onboarding(conn, tenant_id, pairs, now)


def _count_month(
    conn: sa.Connection, tenant_id: str, added: int, operator_quota: int, now: datetime
) -> None:
    month = now.strftime("%Y-%m")
    upsert_adding(
        conn,
        t.usage_alerts,
        [{"tenant_id": tenant_id, "month": month, "alerts": added}],
        ("alerts",),
    )
    tenant = conn.execute(
        sa.select(t.tenants.c.plan, t.tenants.c.monthly_quota).where(t.tenants.c.id == tenant_id)
    ).first()
    if tenant is None:
        return
    limit = quota(plan_named(tenant.plan), tenant.monthly_quota, operator_quota)
    threshold = warning_threshold(limit)
    if not threshold:
        return
    after = conn.execute(
        sa.select(t.usage_alerts.c.alerts).where(
            t.usage_alerts.c.tenant_id == tenant_id, t.usage_alerts.c.month == month
        )
    ).scalar_one()
    if after - added < threshold <= after:
        record_event(
            conn,
            tenant_id,
            "quota.warning",
            {"month": month, "alerts": after, "quota": limit, "percent": _percent(after, limit)},
            now,
        )


def _percent(used: int, limit: int) -> float:
    return round(100.0 * used / limit, 1) if limit else 0.0


def record_event(
    conn: sa.Connection, tenant_id: str, name: str, detail: dict[str, Any], at: datetime
) -> None:
    conn.execute(
        t.product_events.insert().values(
            id=new_id(), tenant_id=tenant_id, name=name, at=at, detail=detail
        )
    )


def reach_step(
    conn: sa.Connection, tenant_id: str, step: str, at: datetime, detail: dict[str, Any]
) -> bool:
    """Record an onboarding step the first time it happens; whether this was it."""
    insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(
        t.onboarding_steps
    )
    values = {"tenant_id": tenant_id, "step": step, "at": at, "detail": detail}
    done = conn.execute(insert.values(values).on_conflict_do_nothing()).rowcount
    return bool(done)


def _onboarding(
    conn: sa.Connection,
    tenant_id: str,
    pairs: Sequence[tuple[FoldResult, Decision]],
    now: datetime,
) -> None:
    hit, _ = _onboarded.get(tenant_id)
    if hit:
        return
    steps = dict(
        conn.execute(
            sa.select(t.onboarding_steps.c.step, t.onboarding_steps.c.at).where(
                t.onboarding_steps.c.tenant_id == tenant_id,
                t.onboarding_steps.c.step.in_((FIRST_ALERT, FIRST_INCIDENT)),
            )
        ).all()
    )
    if FIRST_INCIDENT in steps:  # committed earlier: never look again in this process
        _onboarded.put(tenant_id, True)
        return
    first_alert = steps.get(FIRST_ALERT)
    if first_alert is None:
        fold = min((f for f, _ in pairs), key=lambda f: f.alert.received_at)
        first_alert = fold.alert.received_at
        detail = {"alert_id": fold.record.id, "source": fold.alert.source}
        if reach_step(conn, tenant_id, FIRST_ALERT, first_alert, detail):
            record_event(conn, tenant_id, "alert.first_received", detail, first_alert)
    opened = [d for _, d in pairs if d.outcome == "new_incident"]
    if opened:
        seconds = round(max(0.0, (now - first_alert).total_seconds()), 3)
        found: dict[str, Any] = {"incident_id": opened[0].incident_id}
        found["seconds_from_first_alert"] = seconds
        if reach_step(conn, tenant_id, FIRST_INCIDENT, now, found):
            record_event(conn, tenant_id, "alert.correlation.first_match", found, now)
