"""The top noisy fingerprints of an analytics window without grouping all of them.

A large tenant has hundreds of thousands of distinct fingerprints in 90 days; summing
each one's daily counts to keep twenty cost most of an analytics request. Instead the
scheduled jobs keep each completed day's ``K`` most frequent fingerprints with their
count (``rollups_top_daily``, written once per day). A window's candidates are the
``K`` fingerprints with the most alerts in its days' lists, plus the ``K`` with the
most alerts on its days that have no list yet (today, and any day the jobs have not
reached), ranked the same way from the daily counts. Only those (at most ``2 K``) have
their window counts summed, exactly, through ``ix_rollups_fingerprint_daily_fp``: the
work is bounded by ``K`` and the length of the window's lists, not by how many
distinct fingerprints the window holds (summing ten thousand listed candidates took
0.2-0.3 s on PostgreSQL at a million alerts).

The counts reported are exact; the selection is not: a fingerprint is missed if it
ranks below the hundredth on every listed day it fires on, or if its listed counts
rank it below the hundredth candidate, yet it belongs in the window's top twenty. With
``K`` five times the twenty shown that takes a fingerprint spread thinly over many
days. Alerts that arrive late for a day already listed count in the sums but neither
in its list nor in the ranking of the candidates.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from dd0c_alert.domain.plans import COUNTERS_DAYS

from . import schema as t
from .rollups import day_of
from .tenancy import reading, scoped

#: Fingerprints kept per tenant and day.
K = 100
#: A day is listed once it has been over this long (the worker's lag for its last alerts).
GRACE = timedelta(hours=1)
_DAY = timedelta(days=1)


def completed_before(now: datetime) -> datetime:
    """The first day not yet complete at ``now``: days before it can be listed."""
    return day_of(now - GRACE)


def noisy(
    conn: sa.Connection,
    tenant_id: str,
    first: datetime,
    until: datetime,
    top: int,
    service: str | None = None,
) -> list[Any]:
    """(fingerprint, title, count) of the ``top`` fingerprints with the most alerts on
    the days in [``first``, ``until``), most first; of one ``service`` when given."""
    f, d = t.rollups_fingerprint_daily, t.rollups_top_daily
    if service is not None:
        return _noisy_of_service(conn, tenant_id, first, until, top, service)
    listed = set(
        conn.execute(
            sa.select(d.c.day)
            .distinct()
            .where(d.c.tenant_id == tenant_id, d.c.day >= first, d.c.day < until)
        ).scalars()
    )
    day, unlisted = day_of(first), []
    while day < until:
        if day >= first and day not in listed:
            unlisted.append(day)
        day += _DAY
    ranked = sa.func.sum(d.c.alerts)
    candidates = set(
        conn.execute(
            sa.select(d.c.fingerprint)
            .where(d.c.tenant_id == tenant_id, d.c.day >= first, d.c.day < until)
            .group_by(d.c.fingerprint)
            .order_by(ranked.desc(), d.c.fingerprint)
            .limit(K)
        ).scalars()
    )
    if unlisted:
        counted = sa.func.sum(f.c.alerts)
        candidates |= set(
            conn.execute(
                sa.select(f.c.fingerprint)
                .where(f.c.tenant_id == tenant_id, f.c.day.in_(unlisted))
                .group_by(f.c.fingerprint)
                .order_by(counted.desc(), f.c.fingerprint)
                .limit(K)
            ).scalars()
        )
    if not candidates:
        return []
    return _ranked(conn, tenant_id, f.c.fingerprint.in_(sorted(candidates)), first, until, top)


def _noisy_of_service(
    conn: sa.Connection, tenant_id: str, first: datetime, until: datetime, top: int, service: str
) -> list[Any]:
    """The daily rollups know fingerprints, not services, and the days' top lists are
    the tenant's: one service's candidates are the fingerprints its alerts of the
    window carry (read through the tenant-and-service index), summed in the rollups."""
    a = t.alerts
    fingerprints = (
        sa.select(a.c.fingerprint)
        .where(a.c.tenant_id == tenant_id, a.c.service == service, a.c.started_at >= first)
        .distinct()
        .scalar_subquery()
    )
    chosen = t.rollups_fingerprint_daily.c.fingerprint.in_(fingerprints)
    return _ranked(conn, tenant_id, chosen, first, until, top)


def _ranked(
    conn: sa.Connection,
    tenant_id: str,
    chosen: sa.ColumnElement[bool],
    first: datetime,
    until: datetime,
    top: int,
) -> list[Any]:
    """(fingerprint, title, count) of the ``chosen`` fingerprints' window sums, the
    ``top`` largest first."""
    f = t.rollups_fingerprint_daily
    total = sa.func.sum(f.c.alerts)
    return list(
        conn.execute(
            sa.select(f.c.fingerprint, sa.func.max(f.c.title), total)
            .where(f.c.tenant_id == tenant_id, chosen, f.c.day >= first, f.c.day < until)
            .group_by(f.c.fingerprint)
            .order_by(total.desc(), f.c.fingerprint)
            .limit(top)
        ).all()
    )


def list_days(engine: sa.Engine, read_engine: sa.Engine, tenant_id: str, now: datetime) -> int:
    """List the tenant's completed days of the last ``COUNTERS_DAYS`` that have counts
    but no list yet, a day per transaction; how many were listed. Idempotent.

    Ranking a day sorts every fingerprint counted that day (a storm's day can hold a
    million): that is a read, on ``read_engine``; the write transaction only inserts
    the ``K`` rows, so the worker does not wait out a sort for SQLite's write lock."""
    f, d, daily = t.rollups_fingerprint_daily, t.rollups_top_daily, t.rollups_daily
    end = completed_before(now)
    start = end - timedelta(days=COUNTERS_DAYS + 1)
    with reading(read_engine, tenant_id) as conn:
        counted = conn.execute(
            sa.select(daily.c.day).where(
                daily.c.tenant_id == tenant_id,
                daily.c.dimension == "all",
                daily.c.value == "",
                daily.c.day >= start,
                daily.c.day < end,
            )
        ).scalars()
        listed = conn.execute(
            sa.select(d.c.day)
            .distinct()
            .where(d.c.tenant_id == tenant_id, d.c.day >= start, d.c.day < end)
        ).scalars()
        missing = sorted(set(counted) - set(listed))
    done = 0
    for day in missing:
        with reading(read_engine, tenant_id) as conn:
            top = conn.execute(
                sa.select(f.c.tenant_id, f.c.day, f.c.fingerprint, f.c.alerts)
                .where(f.c.tenant_id == tenant_id, f.c.day == day)
                .order_by(f.c.alerts.desc(), f.c.fingerprint)
                .limit(K)
            ).all()
        if not top:
            continue
        with scoped(engine, tenant_id) as conn:
            insert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(d)
            # Another jobs process listing the same day at once is no error. (RETURNING:
            # psycopg reports no rowcount for INSERT ... ON CONFLICT.)
            written = conn.execute(
                insert.values([row._asdict() for row in top])
                .on_conflict_do_nothing()
                .returning(d.c.fingerprint)
            ).first()
        done += written is not None
    return done
