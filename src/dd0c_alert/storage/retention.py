"""Retention: a tenant's records older than a cutoff are deleted in small batches.

Batches of a few thousand rows, each its own short transaction, keep the worker from
waiting behind one long delete (on SQLite they share the write lock; webhook admission
writes to the queue's own file). What is still going on is kept whatever its
age: firing alerts, and the incidents that still have alerts.

The audit log is append-only for people; retention is what removes its rows. Hourly
counters are kept for at least ``plans.COUNTERS_DAYS`` (the longest analytics window)
whatever the cutoff; per-fingerprint daily counts and the daily top fingerprints carry
alert titles resp. fingerprints and go at the cutoff like the alerts. Monthly usage rows
(the quota) and onboarding steps are one row per month or step and stay. Notification
deliveries and their attempts go once their incident has gone. On PostgreSQL, pgmq's
archive of dead-lettered messages goes at the cutoff like the dead letters.

Account rows that are spent go too: refresh tokens, invitations and the tenant's
members' password resets that expired (or, invitations, were accepted) before the
cutoff. A link presented after its row went is unknown, and refused as an expired or
spent one is.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dd0c_alert.domain.ids import first_id_at
from dd0c_alert.domain.plans import COUNTERS_DAYS

from . import schema as t
from .tenancy import reading, scope_user, scoped

BATCH = 5000


def purge_tenant(
    engine: sa.Engine,
    read_engine: sa.Engine,
    tenant_id: str,
    cutoff: datetime,
    batch: int = BATCH,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete the tenant's records older than ``cutoff``; how many of each kind went.

    No index says when alerts and decisions were last seen or decided (the worker
    would pay for it on every write): they are found within the ids minted before the
    cutoff, and the scans are reads on ``read_engine``; each write transaction then
    deletes a batch of found ids that still match. On SQLite a delete that scanned
    held the write lock for the whole scan: seconds at two million alerts, every pass,
    while the worker's queue lag grew."""
    a, d, i, dl = t.alerts, t.decisions, t.incidents, t.dead_letters
    audit, events = t.audit_log, t.product_events
    # Alerts and decisions get their ids when the worker stores them, and an alert is
    # last seen when a delivery of it arrives: one last seen before the cutoff was
    # stored before it, give or take the queue's lag. So only ids minted before the
    # cutoff are scanned (an index range), not the whole history; one stored late (a
    # replayed dead letter, a backlog) is kept until the cutoff passes its storing.
    stored_before = first_id_at(cutoff)
    expired: dict[str, tuple[sa.Table, sa.ColumnElement[bool]]] = {
        "alerts": (
            a,
            (a.c.id < stored_before) & (a.c.last_seen_at < cutoff) & (a.c.status != "firing"),
        ),
        # A kept alert keeps its explanations, however old the event.
        "decisions": (
            d,
            (d.c.id < stored_before)
            & (d.c.at < cutoff)
            & ~sa.exists().where(a.c.id == d.c.alert_id),
        ),
        "deploys": (t.deploys, t.deploys.c.started_at < cutoff),
        "dead_letters": (dl, dl.c.received_at < cutoff.timestamp()),
        "audit_log": (audit, audit.c.at < cutoff),
        "product_events": (events, events.c.at < cutoff),
        # Each renewal of a sign-in adds one (a session renews every 15 minutes)
        # and nothing else removed them. One expired before the cutoff is no use even
        # to spot a stolen copy: presented now it is refused either way.
        "refresh_tokens": (
            t.refresh_tokens,
            (t.refresh_tokens.c.id < stored_before) & (t.refresh_tokens.c.expires_at < cutoff),
        ),
        # Every invitation left its row. One accepted or expired before the cutoff is
        # refused either way (a revoked one was deleted then).
        "invitations": (
            t.invitations,
            (t.invitations.c.id < stored_before)
            & ((t.invitations.c.accepted_at < cutoff) | (t.invitations.c.expires_at < cutoff)),
        ),
    }
    done = {
        kind: _in_batches(engine, read_engine, tenant_id, table, condition, batch)
        for kind, (table, condition) in expired.items()
    }
    done["password_resets"] = _password_resets(engine, read_engine, tenant_id, cutoff, batch)
    counters = min(cutoff, (now or datetime.now(UTC)) - timedelta(days=COUNTERS_DAYS))
    by_day: dict[str, tuple[sa.Table, sa.Column[datetime], datetime]] = {
        "rollups_hourly": (t.rollups_hourly, t.rollups_hourly.c.hour, counters),
        "rollups_daily": (t.rollups_daily, t.rollups_daily.c.day, counters),
        "integration_stats": (t.integration_stats, t.integration_stats.c.hour, counters),
        "rollups_fingerprint_daily": (
            t.rollups_fingerprint_daily,
            t.rollups_fingerprint_daily.c.day,
            cutoff,
        ),
        "rollups_top_daily": (t.rollups_top_daily, t.rollups_top_daily.c.day, cutoff),
    }
    for kind, (table, column, before) in by_day.items():
        done[kind] = _rollups_in_batches(engine, tenant_id, table, column, before, batch)
    expired_incident = (
        (i.c.tenant_id == tenant_id)
        & (i.c.last_at < cutoff)
        & ~sa.exists().where(a.c.tenant_id == tenant_id, a.c.incident_id == i.c.id)
    )
    gone: list[str] = []
    while True:
        with reading(read_engine, tenant_id) as conn:
            found = list(conn.execute(sa.select(i.c.id).where(expired_incident).limit(batch)))
        if not found:
            break
        with scoped(engine, tenant_id) as conn:
            # Still expired: an alert may have joined one since it was read.
            ids = list(
                conn.execute(
                    sa.select(i.c.id).where(expired_incident, i.c.id.in_([r.id for r in found]))
                ).scalars()
            )
            for table in (t.incident_services, t.incident_events, t.feedback, t.incident_search):
                conn.execute(
                    table.delete().where(
                        table.c.tenant_id == tenant_id, table.c.incident_id.in_(ids)
                    )
                )
            # Incidents merged into one of these point at it; they go with it.
            conn.execute(i.delete().where(i.c.tenant_id == tenant_id, i.c.merged_into.in_(ids)))
            conn.execute(i.delete().where(i.c.tenant_id == tenant_id, i.c.id.in_(ids)))
        gone += ids
        if len(found) < batch:
            break
    done["incidents"] = len(gone)
    done.update(_deliveries(engine, read_engine, tenant_id, cutoff, batch))
    if engine.dialect.name == "postgresql":
        done["queue_archive"] = _queue_archive(engine, tenant_id, cutoff, batch)
    return done


#: pgmq's archive of the production queue (migration 0005's queue ``dd0c_ingest``): the
#: worker moves a dead-lettered event's message there, body and headers included.
_QUEUE_ARCHIVE_PURGE = sa.text(
    "DELETE FROM pgmq.a_dd0c_ingest WHERE msg_id IN (SELECT msg_id FROM pgmq.a_dd0c_ingest"
    " WHERE archived_at < :cutoff AND message->>'tenant_id' = :tenant LIMIT :batch)"
)


def _queue_archive(engine: sa.Engine, tenant_id: str, cutoff: datetime, batch: int) -> int:
    """Delete the tenant's messages pgmq archived before ``cutoff``, ``batch`` per
    transaction. The ``dead_letters`` row went at the cutoff; the archived copy of the
    same payload (credentials included, as ``redact-stored`` knows) stayed for ever."""
    total = 0
    params = {"cutoff": cutoff, "tenant": tenant_id, "batch": batch}
    while True:
        with scoped(engine, tenant_id) as conn:
            deleted = conn.execute(_QUEUE_ARCHIVE_PURGE, params).rowcount
        total += deleted
        if deleted < batch:
            return total


def _deliveries(
    engine: sa.Engine, read_engine: sa.Engine, tenant_id: str, cutoff: datetime, batch: int
) -> dict[str, int]:
    """Delete the deliveries of incidents that are gone, untouched since the cutoff, then
    the attempts of deliveries that are gone. Nothing else removed them: every page,
    mail and webhook left a row, and each try another, for ever (with the destination
    and the error text), after their incident had gone. A kept incident keeps its
    deliveries: the living Slack message is updated through its row."""
    o, at, i = t.deliveries, t.delivery_attempts, t.incidents
    stored_before = first_id_at(cutoff)
    orphaned = (
        (o.c.id < stored_before)
        & (o.c.updated_at < cutoff)
        & ~sa.exists().where(i.c.tenant_id == tenant_id, i.c.id == o.c.incident_id)
    )
    attempts_orphaned = (at.c.id < stored_before) & ~sa.exists().where(
        o.c.tenant_id == tenant_id, o.c.id == at.c.delivery_id
    )
    return {
        "deliveries": _in_batches(engine, read_engine, tenant_id, o, orphaned, batch),
        "delivery_attempts": _in_batches(
            engine, read_engine, tenant_id, at, attempts_orphaned, batch
        ),
    }


def _password_resets(
    engine: sa.Engine, read_engine: sa.Engine, tenant_id: str, cutoff: datetime, batch: int
) -> int:
    """Delete the password resets of the tenant's members that expired before
    ``cutoff`` (used ones included: a link is spent within its expiry). Every
    forgotten password left a row for ever.

    Resets belong to a user, not a tenant: on PostgreSQL a reset is visible only to a
    transaction scoped to its user (``app.user_id``), so each member's are found and
    deleted under that member's scope, as ``spend_reset`` reads them. A user in no
    tenant has no pass to purge theirs."""
    pr, m = t.password_resets, t.memberships
    expired = (pr.c.id < first_id_at(cutoff)) & (pr.c.expires_at < cutoff)
    with reading(read_engine, tenant_id) as conn:
        members = list(
            conn.execute(sa.select(m.c.user_id).where(m.c.tenant_id == tenant_id)).scalars()
        )
    return sum(
        _in_batches(engine, read_engine, tenant_id, pr, expired, batch, user_id=user_id)
        for user_id in members
    )


def _rollups_in_batches(
    engine: sa.Engine,
    tenant_id: str,
    table: sa.Table,
    column: sa.Column[datetime],
    cutoff: datetime,
    batch: int,
) -> int:
    """Delete a rollup table's rows before ``cutoff``, ``batch`` of them per
    transaction, picked by primary key. (One day per transaction was unbounded: a
    day of per-fingerprint counts can hold a row for every alert of the day, and a
    soak's pass deleted 128,000 of them in one two-second transaction while the
    worker waited for the write lock.)"""
    key = sa.tuple_(*table.primary_key.columns)
    total = 0
    while True:
        with scoped(engine, tenant_id) as conn:
            oldest = (
                sa.select(*table.primary_key.columns)
                .where(table.c.tenant_id == tenant_id, column < cutoff)
                .limit(batch)
            )
            deleted = conn.execute(
                table.delete().where(table.c.tenant_id == tenant_id, key.in_(oldest))
            ).rowcount
        total += deleted
        if deleted < batch:
            return total


def _in_batches(
    engine: sa.Engine,
    read_engine: sa.Engine,
    tenant_id: str,
    table: sa.Table,
    condition: sa.ColumnElement[bool],
    batch: int,
    user_id: str | None = None,
) -> int:
    """Find ``batch`` expired rows with a read, delete those that still match. With
    ``user_id``, the rows are that user's (a table of ``user_id``, not ``tenant_id``),
    read and deleted under the user's scope."""
    if user_id is None:
        mine = (table.c.tenant_id == tenant_id) & condition
    else:
        mine = (table.c.user_id == user_id) & condition
    total = 0
    while True:
        with reading(read_engine, tenant_id) as conn:
            if user_id is not None:
                scope_user(conn, user_id)
            ids = list(conn.execute(sa.select(table.c.id).where(mine).limit(batch)).scalars())
        if ids:
            with scoped(engine, tenant_id) as conn:
                if user_id is not None:
                    scope_user(conn, user_id)
                total += conn.execute(table.delete().where(mine, table.c.id.in_(ids))).rowcount
        if len(ids) < batch:
            return total
