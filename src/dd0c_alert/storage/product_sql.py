"""What makes a tenant self-serve: its integrations (list, rename, disable, rotate
the secret, delivery counts), analytics read from the worker's rollups, usage against
the plan, the audit log, product events and onboarding steps.

Every query is scoped by tenant in code and, on PostgreSQL, by row-level security.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from dd0c_alert.domain.ids import new_id

from . import schema as t
from . import top_daily
from .bulk import upsert_adding
from .ports import Integration, Page, RotationInProgress
from .rollups import day_of, dimensions_of, hour_of, record_event
from .rows import decode_cursor, encode_cursor, iso
from .secrets import SecretBox
from .tenancy import reading, scoped

#: Most entries in the lists of an analytics answer.
TOP = 20
INTEGRATION_CREATED = "integration_created"
DESTINATION_CONNECTED = "notification_destination_connected"
ONBOARDING_STEPS = (
    INTEGRATION_CREATED,
    "first_alert_received",
    "first_incident_correlated",
    DESTINATION_CONNECTED,
)


@dataclass(frozen=True, slots=True)
class StatRow:
    """Deliveries of one integration in one hour with one outcome (``accepted`` or a
    refusal's reason code)."""

    tenant_id: str
    integration_id: str
    hour: datetime
    outcome: str
    count: int
    last_at: datetime


def integration_from_row(row: Any, box: SecretBox) -> Integration:
    previous = row.previous_secret_encrypted
    return Integration(
        id=row.id,
        tenant_id=row.tenant_id,
        provider=row.provider,
        name=row.name,
        secret=box.decrypt(row.secret_encrypted),
        created_at=row.created_at,
        enabled=bool(row.enabled),
        previous_secret=_readable(box, previous) if previous else None,
        previous_secret_until=row.previous_secret_until,
    )


def _readable(box: SecretBox, token: str) -> str | None:
    """A rotated-out secret, or None when the key cannot read it: it can prove nothing
    then. Raising made ``integration rotate`` fail after the key was lost, and it is
    the way to give each integration a secret the new key reads."""
    try:
        return box.decrypt(token)
    except InvalidToken:
        return None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    values.sort()
    p90 = values[max(0, math.ceil(0.9 * len(values)) - 1)]  # nearest rank
    return {"median": round(statistics.median(values), 3), "p90": round(p90, 3)}


#: The largest groups ``by_source``, ``by_service`` and ``by_severity`` list.
MAX_GROUPS = 100


def _counts(
    conn: sa.Connection, tenant_id: str, start: datetime, until: datetime, service: str | None
) -> tuple[list[int], dict[str, dict[str, int]], dict[str, list[int]]]:
    """Alerts, incidents opened and pages in ``[start, until)`` (``start`` on the hour):
    in total, by source / service / severity, and per day. Whole days come from
    ``rollups_daily`` (a hundred-odd rows a day), the partial first and last days and
    any one service's counts from ``rollups_hourly``; the database sums them, so a
    90-day window sends a few hundred rows, not every day's."""
    r, d = t.rollups_hourly, t.rollups_daily
    totals = [0, 0, 0]
    by: dict[str, dict[str, int]] = {"source": {}, "service": {}, "severity": {}}
    per_day: dict[str, list[int]] = {}

    def add_day(day: str, counts: Sequence[int]) -> None:
        for n in range(3):
            totals[n] += counts[n]
            per_day.setdefault(day, [0, 0, 0])[n] += counts[n]

    def add(dimension: str, value: str, alerts: int) -> None:
        by[dimension][value] = by[dimension].get(value, 0) + int(alerts)

    first_full = day_of(start) + (timedelta(days=1) if start != day_of(start) else timedelta())
    last_full = day_of(until)
    spans = [(start, until)]
    if service is None and first_full < last_full:
        spans = [(start, first_full), (last_full, until)]

    def hours(since: datetime, before: datetime) -> sa.ColumnElement[bool]:
        # The tenant in each range, so each is an index range (not the window's every hour).
        where = [r.c.tenant_id == tenant_id, r.c.hour >= since, r.c.hour < before]
        return sa.and_(*where, *([r.c.service == service] if service is not None else []))

    hourly = [sa.or_(*(hours(since, before) for since, before in spans))]
    if len(spans) == 2:
        whole = [d.c.tenant_id == tenant_id, d.c.day >= first_full, d.c.day < last_full]
        for row in conn.execute(
            sa.select(d.c.day, d.c.alerts, d.c.incidents_opened, d.c.pages).where(
                *whole, d.c.dimension == "all"
            )
        ):
            add_day(row.day.date().isoformat(), (row.alerts, row.incidents_opened, row.pages))
        for dimension, value, alerts in conn.execute(
            sa.select(d.c.dimension, d.c.value, sa.func.sum(d.c.alerts))
            .where(*whole, d.c.dimension != "all")
            .group_by(d.c.dimension, d.c.value)
        ):
            add(dimension, value, alerts)
    day = _day_text(conn, r.c.hour)
    sums = [sa.func.sum(r.c.alerts), sa.func.sum(r.c.incidents_opened), sa.func.sum(r.c.pages)]
    for row in conn.execute(sa.select(day, *sums).where(*hourly).group_by(day)):
        add_day(row[0], [int(n) for n in row[1:]])
    keys = (r.c.service, r.c.source, r.c.severity)
    for svc, source, severity, alerts in conn.execute(
        sa.select(*keys, sums[0]).where(*hourly).group_by(*keys)
    ):
        for dimension, value in dimensions_of(svc, source, severity)[1:]:
            add(dimension, value, alerts)
    largest = {
        name: dict(sorted(group.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_GROUPS])
        for name, group in by.items()
    }
    return totals, largest, per_day


def _day_text(conn: sa.Connection, at: Any) -> Any:
    """``YYYY-MM-DD`` of a stored UTC time, in SQL."""
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", at), "YYYY-MM-DD")
    return sa.func.substr(at, 1, 10)


def _seconds_between(conn: sa.Connection, later: Any, earlier: Any) -> Any:
    if conn.dialect.name == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


class ProductStore:
    def __init__(self, engine: sa.Engine, read_engine: sa.Engine, box: SecretBox) -> None:
        self._engine = engine
        self._read = read_engine
        self._box = box

    # --- integrations -----------------------------------------------------------------

    def list_integrations(self, tenant_id: str) -> list[Integration]:
        i = t.integrations
        with scoped(self._read, tenant_id) as conn:
            rows = conn.execute(
                sa.select(i).where(i.c.tenant_id == tenant_id).order_by(i.c.id)
            ).all()
        return [integration_from_row(row, self._box) for row in rows]

    def get_integration(self, tenant_id: str, integration_id: str) -> Integration | None:
        i = t.integrations
        with scoped(self._read, tenant_id) as conn:
            row = conn.execute(
                sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == integration_id)
            ).first()
        return None if row is None else integration_from_row(row, self._box)

    def update_integration(
        self,
        tenant_id: str,
        integration_id: str,
        *,
        name: str | None = None,
        enabled: bool | None = None,
        new_secret: str | None = None,
        grace: timedelta = timedelta(hours=24),
        revoke_previous: bool = False,
    ) -> Integration | None:
        """Rename, enable or disable, or rotate the secret (the current one stays
        valid for ``grace``); None when the tenant has no such integration.

        Only one previous secret is kept, so a rotation while it is still accepted
        raises ``RotationInProgress`` and changes nothing. The check is part of the
        UPDATE's condition: of two rotations at once, one wins and one is refused.
        ``revoke_previous`` is the way out when a secret leaked: the previous secret's
        grace ends now, and a rotation with it has none. The rotated-out secret stays
        stored, so a sender still on it is told ``secret_rotated``."""
        i = t.integrations
        mine = (i.c.tenant_id == tenant_id) & (i.c.id == integration_id)
        now = datetime.now(UTC)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = name
        if enabled is not None:
            values["enabled"] = enabled
        if revoke_previous:
            until = i.c.previous_secret_until
            ends = sa.literal(now, type_=until.type)  # stored as every time of the column
            values["previous_secret_until"] = sa.case((until > ends, ends), else_=until)
        with scoped(self._engine, tenant_id) as conn:
            row = conn.execute(sa.select(i).where(mine)).first()
            if row is None:
                return None
            condition = mine
            if new_secret is not None:
                values |= {
                    "secret_encrypted": self._box.encrypt(new_secret),
                    "previous_secret_encrypted": i.c.secret_encrypted,
                    "previous_secret_until": now if revoke_previous else now + grace,
                }
                if not revoke_previous:
                    condition = mine & _no_grace_running(now)
            if values and conn.execute(i.update().where(condition).values(values)).rowcount == 0:
                _refuse_rotation(conn, mine)
            row = conn.execute(sa.select(i).where(mine)).one()
        return integration_from_row(row, self._box)

    def delete_integration(self, tenant_id: str, integration_id: str) -> bool:
        i, s = t.integrations, t.integration_stats
        with scoped(self._engine, tenant_id) as conn:
            gone = conn.execute(
                i.delete().where(i.c.tenant_id == tenant_id, i.c.id == integration_id)
            ).rowcount
            conn.execute(
                s.delete().where(s.c.tenant_id == tenant_id, s.c.integration_id == integration_id)
            )
        return bool(gone)

    def record_integration_stats(self, rows: Sequence[StatRow]) -> None:
        by_tenant: dict[str, list[StatRow]] = {}
        for row in rows:
            by_tenant.setdefault(row.tenant_id, []).append(row)
        for tenant_id, stats in by_tenant.items():
            with scoped(self._engine, tenant_id) as conn:
                upsert_adding(
                    conn,
                    t.integration_stats,
                    [
                        {
                            "tenant_id": r.tenant_id,
                            "integration_id": r.integration_id,
                            "hour": r.hour,
                            "outcome": r.outcome,
                            "count": r.count,
                            "last_at": r.last_at,
                        }
                        for r in sorted(stats, key=lambda r: (r.integration_id, r.hour, r.outcome))
                    ],
                    ("count",),
                    ("last_at",),
                )

    def integration_stats(self, tenant_id: str, now: datetime) -> dict[str, dict[str, Any]]:
        """Per integration: the last accepted delivery's time, and over the last 24
        hours (whole hours) deliveries accepted, refused by reason, dead-lettered."""
        s, dl = t.integration_stats, t.dead_letters
        since = hour_of(now - timedelta(hours=24))
        found: dict[str, dict[str, Any]] = {}

        def entry(integration_id: str) -> dict[str, Any]:
            return found.setdefault(
                integration_id,
                {"last_received_at": None, "accepted": 0, "rejected": {}, "dead_lettered": 0},
            )

        with scoped(self._read, tenant_id) as conn:
            for integration_id, outcome, count in conn.execute(
                sa.select(s.c.integration_id, s.c.outcome, sa.func.sum(s.c.count))
                .where(s.c.tenant_id == tenant_id, s.c.hour > since)
                .group_by(s.c.integration_id, s.c.outcome)
            ):
                if outcome == "accepted":
                    entry(integration_id)["accepted"] = int(count)
                else:
                    entry(integration_id)["rejected"][outcome] = int(count)
            for integration_id, last in conn.execute(
                sa.select(s.c.integration_id, sa.func.max(s.c.last_at))
                .where(s.c.tenant_id == tenant_id, s.c.outcome == "accepted")
                .group_by(s.c.integration_id)
            ):
                entry(integration_id)["last_received_at"] = iso(last)
            for integration_id, count in conn.execute(
                sa.select(dl.c.integration_id, sa.func.count())
                .where(dl.c.tenant_id == tenant_id, dl.c.received_at >= since.timestamp())
                .group_by(dl.c.integration_id)
            ):
                entry(integration_id)["dead_lettered"] = int(count)
        return found

    # --- plans and usage --------------------------------------------------------------

    def set_plan(self, tenant_id: str, plan: str) -> None:
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(t.tenants.update().where(t.tenants.c.id == tenant_id).values(plan=plan))

    # --- analytics --------------------------------------------------------------------

    def analytics(
        self, tenant_id: str, since: datetime, until: datetime, service: str | None
    ) -> dict[str, Any]:
        """Counts from the hourly rollups; MTTA/MTTR from the incidents opened in the
        window; top noisy fingerprints from the daily fingerprint rollups, the
        candidates from each day's top list (``storage.top_daily``)."""
        i = t.incidents
        with reading(self._read, tenant_id) as conn:
            totals, by, per_day = _counts(conn, tenant_id, hour_of(since), until, service)
            first = [i.c.tenant_id == tenant_id, i.c.first_at >= since, i.c.first_at < until]
            if service is not None:
                first.append(
                    sa.exists().where(
                        t.incident_services.c.tenant_id == tenant_id,
                        t.incident_services.c.service == service,
                        t.incident_services.c.incident_id == i.c.id,
                    )
                )
            first.append(i.c.merged_into.is_(None))  # as the partial indexes state it
            # One pass over the window's incidents for both (a large tenant has 100,000).
            mtta: list[float] = []
            mttr: list[float] = []
            for acknowledged, resolved in conn.execute(
                sa.select(
                    _seconds_between(conn, i.c.acknowledged_at, i.c.first_at),
                    _seconds_between(conn, i.c.resolved_at, i.c.first_at),
                ).where(*first, i.c.acknowledged_at.is_not(None) | i.c.resolved_at.is_not(None))
            ):
                if acknowledged is not None:
                    mtta.append(float(acknowledged))
                if resolved is not None:
                    mttr.append(float(resolved))
            noisy = top_daily.noisy(conn, tenant_id, day_of(since), until, TOP, service)
            flapping = conn.execute(
                sa.select(i.c.id, i.c.title, i.c.flapping, i.c.first_at)
                .where(*first, sa.text(t.FLAPPED))
                .order_by(i.c.first_at.desc())
                .limit(TOP)
            ).all()
            s = t.suggestions
            suggestion_counts: dict[str, int] = dict(
                conn.execute(
                    sa.select(s.c.status, sa.func.count())
                    .where(s.c.tenant_id == tenant_id, s.c.created_at >= since)
                    .group_by(s.c.status)
                ).all()
            )
            d = t.deliveries
            delivery_counts: dict[str, int] = dict(
                conn.execute(
                    sa.select(d.c.status, sa.func.count())
                    .where(d.c.tenant_id == tenant_id, d.c.created_at >= since)
                    .group_by(d.c.status)
                ).all()
            )
        alerts, incidents, pages = totals
        return {
            "alerts": alerts,
            "incidents": incidents,
            "pages": pages,
            "noise_reduction": round(1 - incidents / alerts, 4) if alerts else None,
            "mtta_seconds": _percentiles(mtta),
            "mttr_seconds": _percentiles(mttr),
            "by_source": by["source"],
            "by_service": by["service"],
            "by_severity": by["severity"],
            "daily": [
                {"day": day, "alerts": c[0], "incidents": c[1], "pages": c[2]}
                for day, c in sorted(per_day.items())
            ],
            "top_noisy": [
                {"fingerprint": fp, "title": title, "count": int(n)} for fp, title, n in noisy
            ],
            "flapping": [
                {
                    "incident_id": row.id,
                    "title": row.title,
                    "fingerprints": list(row.flapping)[:TOP],
                    "opened_at": iso(row.first_at),
                }
                for row in flapping
            ],
            "suggestions": {
                "accepted": int(suggestion_counts.get("accepted", 0)),
                "dismissed": int(suggestion_counts.get("dismissed", 0)),
                "open": int(suggestion_counts.get("open", 0)),
            },
            "deliveries": {
                "delivered": int(delivery_counts.get("delivered", 0)),
                "failed": int(delivery_counts.get("failed", 0)),
            },
        }

    def list_top_days(self, tenant_id: str, now: datetime | None = None) -> int:
        """Keep each completed day's top fingerprints for analytics (scheduled jobs)."""
        return top_daily.list_days(self._engine, self._read, tenant_id, now or datetime.now(UTC))

    # --- audit log --------------------------------------------------------------------

    def record_audit(
        self,
        tenant_id: str,
        *,
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        detail: dict[str, Any],
        client: str,
    ) -> None:
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(
                t.audit_log.insert().values(
                    id=new_id(),
                    tenant_id=tenant_id,
                    at=datetime.now(UTC),
                    actor=actor[:200],
                    action=action[:64],
                    target_type=target_type[:40],
                    target_id=target_id[:200],
                    detail=detail,
                    client=client[:64],
                )
            )

    def list_audit(
        self,
        tenant_id: str,
        *,
        action: str | None,
        actor: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        a = t.audit_log
        query = sa.select(a).where(a.c.tenant_id == tenant_id)
        if action is not None:
            query = query.where(a.c.action == action)
        if actor is not None:
            query = query.where(a.c.actor == actor)
        if since is not None:
            query = query.where(a.c.at >= since)
        if until is not None:
            query = query.where(a.c.at < until)
        return self._page(tenant_id, a, query, limit, cursor, _audit_dict)

    # --- product events and onboarding ------------------------------------------------

    def record_event(self, tenant_id: str, name: str, detail: dict[str, Any]) -> None:
        with scoped(self._engine, tenant_id) as conn:
            record_event(conn, tenant_id, name, detail, datetime.now(UTC))

    def list_events(self, tenant_id: str, name: str | None, limit: int, cursor: str | None) -> Page:
        e = t.product_events
        query = sa.select(e).where(e.c.tenant_id == tenant_id)
        if name is not None:
            query = query.where(e.c.name == name)
        return self._page(tenant_id, e, query, limit, cursor, _event_dict)

    def onboarding(self, tenant_id: str) -> list[dict[str, Any]]:
        o = t.onboarding_steps
        with scoped(self._read, tenant_id) as conn:
            done = {
                row.step: row
                for row in conn.execute(sa.select(o).where(o.c.tenant_id == tenant_id))
            }
            connected = [
                at
                for at in (
                    conn.execute(
                        sa.select(sa.func.min(t.slack_settings.c.updated_at)).where(
                            t.slack_settings.c.tenant_id == tenant_id
                        )
                    ).scalar(),
                    conn.execute(
                        sa.select(sa.func.min(t.routes.c.created_at)).where(
                            t.routes.c.tenant_id == tenant_id
                        )
                    ).scalar(),
                )
                if at is not None
            ]
        steps = []
        for step in ONBOARDING_STEPS:
            row = done.get(step)
            at: Any = row.at if row is not None else None
            if step == DESTINATION_CONNECTED and connected:
                at = min(connected)
            steps.append(
                {
                    "step": step,
                    "done": at is not None,
                    "at": iso(at),
                    "detail": dict(row.detail) if row is not None else {},
                }
            )
        return steps

    # --- paging -----------------------------------------------------------------------

    def _page(
        self,
        tenant_id: str,
        table: sa.Table,
        query: sa.Select[Any],
        limit: int,
        cursor: str | None,
        render: Any,
    ) -> Page:
        if cursor:
            query = query.where(table.c.id < decode_cursor(cursor))
        with scoped(self._read, tenant_id) as conn:
            rows = conn.execute(query.order_by(table.c.id.desc()).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[render(row) for row in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )


def _audit_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "at": iso(row.at),
        "actor": row.actor,
        "action": row.action,
        "target_type": row.target_type,
        "target_id": row.target_id,
        "detail": dict(row.detail),
        "client": row.client,
    }


def _event_dict(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "at": iso(row.at), "detail": dict(row.detail)}


def _no_grace_running(now: datetime) -> sa.ColumnElement[bool]:
    """No previous secret is still accepted: never rotated, or its grace is over."""
    until = t.integrations.c.previous_secret_until
    return sa.or_(until.is_(None), until <= now)


def _refuse_rotation(conn: sa.Connection, mine: sa.ColumnElement[bool]) -> NoReturn:
    """The rotation's UPDATE matched nothing although the integration exists: its
    previous secret is still inside the grace."""
    until = conn.execute(sa.select(t.integrations.c.previous_secret_until).where(mine)).scalar()
    raise RotationInProgress(until if until is not None else datetime.now(UTC))
