"""The worker's batch transaction: one connection, one transaction, a handful of
statements per batch whatever its size (folded alerts, incidents, decisions, rollups,
notification intents, dead letters and the queue's acknowledgement commit together)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence, Set
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, FoldResult
from dd0c_alert.correlation.engine import EngineState
from dd0c_alert.correlation.model import (
    Decision,
    DeployRef,
    Rules,
    TenantSettings,
)
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import DeployEvent

from . import schema as t
from .alert_records import FIRING, LATEST_ENDED
from .alert_records import record as alert_record
from .bulk import execute_many
from .correlation_sql import load_state, save_state, stored_deploy_refs
from .in_lists import bound_list
from .outbox import write_intents
from .ports import (
    BatchOutcome,
    DeadLetter,
)
from .rollups import save_rollups
from .tenancy import scope

#: Settles a batch's queue messages inside the worker's transaction: pgmq acknowledges
#: them there (same database); SQLite's queue, in a file of its own, records them in
#: the inbox and lets go of them after the commit (``SqliteIngestQueue.acknowledge``).
QueueSettle = Callable[[sa.Connection, BatchOutcome], None]


_ALERT_FIELDS = (
    "status",
    "severity",
    "title",
    "description",
    "labels",
    "links",
    "ended_at",
)
#: What every notification of an occurrence may change. The incident too: an alert
#: whose incident was gone (merged away) is placed again.
_COUNTERS = ("last_seen_at", "repeat_count", "incident_id")
_UPDATE_ALERT = (
    t.alerts.update()
    .where(t.alerts.c.id == sa.bindparam("_id"))
    .values({name: sa.bindparam(name) for name in (*_ALERT_FIELDS, *_COUNTERS)})
)
#: A plain repeat's update (``AlertRecord.changed`` unset): the counters and the
#: incident alone. Naming every column made SQLite rewrite the entries of each index
#: over ``status`` (the partial ``ux_alerts_active_fingerprint``) on every repeat of a
#: firing alert.
_COUNT_REPEAT = (
    t.alerts.update()
    .where(t.alerts.c.id == sa.bindparam("_id"))
    .values({name: sa.bindparam(name) for name in _COUNTERS})
)
_MOVE_START = (
    t.alerts.update()
    .where(t.alerts.c.id == sa.bindparam("_id"))
    .values(started_at=sa.bindparam("started_at"))
)
_INSERT_ALERT = t.alerts.insert()
_STATE_QUERY_CHUNK = 500


class SqlTransaction:
    """The worker's writes for one batch, on one connection inside one transaction.

    Reads are one query per tenant and chunk of fingerprints, writes one
    ``executemany`` per kind and tenant: a batch costs a handful of statements, not
    several per alert, so the write lock is held briefly and ingestion is not kept
    waiting.

    A batch spans tenants: before each tenant's statements the transaction is scoped
    to that tenant (row-level security on PostgreSQL), and only to tenants the
    transaction claimed, so no write escapes the per-tenant lock.
    """

    def __init__(
        self,
        conn: sa.Connection,
        settle: QueueSettle,
        claimed: Collection[str],
        monthly_quota: int = 0,
    ) -> None:
        self._monthly_quota = monthly_quota
        self._conn = conn
        self._settle = settle
        self._claimed = frozenset(claimed)
        self._scope: str | None = None
        #: What ``finish`` settled, for the queue to let go of after the commit.
        self.settled: BatchOutcome | None = None
        self._loaded: dict[str, set[str]] = {}

    def _use(self, tenant_id: str) -> sa.Connection:
        """The connection, scoped to ``tenant_id``."""
        if tenant_id not in self._claimed:
            raise ValueError(f"tenant {tenant_id} was not claimed by this transaction")
        if tenant_id != self._scope:
            scope(self._conn, tenant_id)
            self._scope = tenant_id
        return self._conn

    def correlation_state(
        self,
        tenant_id: str,
        settings: TenantSettings,
        rules: Rules,
        folds: Sequence[FoldResult],
        deploys: Sequence[DeployRef],
        stored: Set[str],
    ) -> EngineState:
        conn = self._use(tenant_id)
        state = load_state(conn, tenant_id, settings, rules, folds, deploys, stored)
        self._loaded[tenant_id] = set(state.incidents)
        return state

    def save_correlation(
        self, state: EngineState, pairs: Sequence[tuple[FoldResult, Decision]]
    ) -> None:
        conn = self._use(state.tenant_id)
        save_state(conn, state, self._loaded.get(state.tenant_id, set()), pairs)

    def save_intents(
        self,
        tenant_id: str,
        intents: Sequence[tuple[str, str, dict[str, Any]]],
        traces: Mapping[str, str] | None = None,
    ) -> None:
        write_intents(self._use(tenant_id), tenant_id, intents, traces)

    def save_rollups(self, tenant_id: str, pairs: Sequence[tuple[FoldResult, Decision]]) -> None:
        """Analytics rollups, the month's alert count and onboarding (``rollups``)."""
        save_rollups(self._use(tenant_id), tenant_id, pairs, self._monthly_quota)

    def fingerprint_states(
        self, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], FingerprintState]:
        """Two index probes per fingerprint, however often it fired before: the firing
        occurrence (at most one, ``ux_alerts_active_fingerprint``) and the latest ended
        one (newest first on ``ix_alerts_tenant_fingerprint_started``). Ranking every
        stored occurrence instead read all of them, in every batch, for an alert that
        had flapped for months."""
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, fingerprint in keys:
            by_tenant.setdefault(tenant_id, []).append(fingerprint)
        states: dict[tuple[str, str], FingerprintState] = {}
        for tenant_id, fingerprints in by_tenant.items():
            conn = self._use(tenant_id)
            for start in range(0, len(fingerprints), _STATE_QUERY_CHUNK):
                chunk = fingerprints[start : start + _STATE_QUERY_CHUNK]
                params = {"tenant": tenant_id, "fingerprints": bound_list(conn, chunk)}
                for row in conn.execute(FIRING[conn.dialect.name], params).all():
                    record = alert_record(row)
                    key = (tenant_id, record.alert.fingerprint)
                    states.setdefault(key, FingerprintState()).active = record
                for row in conn.execute(LATEST_ENDED[conn.dialect.name], params).all():
                    record = alert_record(row)
                    key = (tenant_id, record.alert.fingerprint)
                    states.setdefault(key, FingerprintState()).last_ended = record
        return states

    def save_alerts(self, created: list[AlertRecord], updated: list[AlertRecord]) -> None:
        # Updates first: a stored firing alert that a batch resolves and sees fire again
        # must be resolved before its new occurrence is inserted (one firing alert per
        # fingerprint, ux_alerts_active_fingerprint). Updates never make an alert fire.
        for tenant_id, records in _by_tenant(updated).items():
            rows = [
                {**_counters(r), **{name: getattr(r.alert, name) for name in _ALERT_FIELDS}}
                for r in records
                if r.changed
            ]
            execute_many(self._use(tenant_id), _UPDATE_ALERT, rows)
            counts = [_counters(r) for r in records if not r.changed]
            execute_many(self._use(tenant_id), _COUNT_REPEAT, counts)
            moved = [
                {"_id": r.id, "started_at": r.alert.started_at} for r in records if r.start_moved
            ]
            if moved:
                execute_many(self._use(tenant_id), _MOVE_START, moved)
        for tenant_id, records in _by_tenant(created).items():
            execute_many(self._use(tenant_id), _INSERT_ALERT, [_insert_row(r) for r in records])

    def save_deploys(self, deploys: list[DeployEvent]) -> list[DeployRef]:
        for deploy in deploys:
            _fold_deploy(self._use(deploy.tenant_id), deploy)
        refs: list[DeployRef] = []
        for deploy in deploys:  # after every fold: two updates of one deploy read alike
            refs += stored_deploy_refs(self._use(deploy.tenant_id), [deploy])
        return refs

    def finish(self, outcome: BatchOutcome) -> None:
        now = datetime.now(UTC)
        by_tenant: dict[str, list[DeadLetter]] = {}
        for dead in outcome.dead:
            by_tenant.setdefault(dead.event.tenant_id, []).append(dead)
        for tenant_id, letters in by_tenant.items():
            conn = self._use(tenant_id)
            dl = t.dead_letters
            dead_ids = [dead.event.event_id for dead in letters]
            conn.execute(
                dl.delete().where(dl.c.tenant_id == tenant_id, dl.c.event_id.in_(dead_ids))
            )
            conn.execute(dl.insert(), [_dead_row(d, now) for d in letters])
        self._settle(self._conn, outcome)
        self.settled = outcome


def _by_tenant(records: list[AlertRecord]) -> dict[str, list[AlertRecord]]:
    grouped: dict[str, list[AlertRecord]] = {}
    for record in records:
        grouped.setdefault(record.alert.tenant_id, []).append(record)
    return grouped


def _fold_deploy(conn: sa.Connection, deploy: DeployEvent) -> None:
    """Later status updates of one deploy update its record; empty fields keep
    what an earlier update said."""
    d = t.deploys
    existing = conn.execute(
        sa.select(d).where(
            d.c.tenant_id == deploy.tenant_id,
            d.c.source == deploy.source,
            d.c.source_ref == deploy.source_ref,
        )
    ).first()
    fields = {
        "service": deploy.service,
        "environment": deploy.environment,
        "version": deploy.version,
        "commit": deploy.commit,
        "author": deploy.author,
        "title": deploy.title,
        "url": deploy.url,
    }
    if existing is None:
        conn.execute(
            d.insert().values(
                id=deploy.id,
                tenant_id=deploy.tenant_id,
                event_id=deploy.event_id,
                source=deploy.source,
                source_ref=deploy.source_ref,
                status=deploy.status,
                started_at=deploy.started_at,
                finished_at=deploy.finished_at,
                received_at=deploy.received_at,
                raw_ref=deploy.raw_ref,
                **fields,
            )
        )
        return
    updates: dict[str, Any] = {k: v for k, v in fields.items() if v}
    updates["status"] = deploy.status
    updates["started_at"] = min(existing.started_at, deploy.started_at)
    updates["finished_at"] = deploy.finished_at or existing.finished_at
    updates["raw_ref"] = deploy.raw_ref or existing.raw_ref
    conn.execute(d.update().where(d.c.id == existing.id).values(**updates))


def no_queue(conn: sa.Connection, outcome: BatchOutcome) -> None:
    """The settle step of a store opened without a queue (admin commands, tests of the
    store alone): no message to acknowledge."""


def _counters(record: AlertRecord) -> dict[str, Any]:
    return {
        "_id": record.id,
        "last_seen_at": record.last_seen_at,
        "repeat_count": record.repeat_count,
        "incident_id": record.incident_id or None,
    }


def _insert_row(record: AlertRecord) -> dict[str, Any]:
    alert = record.alert
    return {
        "id": alert.id,
        "tenant_id": alert.tenant_id,
        "event_id": alert.event_id,
        "source": alert.source,
        "source_ref": alert.source_ref,
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "severity": alert.severity,
        "title": alert.title,
        "description": alert.description,
        "service": alert.service,
        "environment": alert.environment,
        "resource": alert.resource,
        "labels": alert.labels,
        "links": alert.links,
        "started_at": alert.started_at,
        "received_at": alert.received_at,
        "last_seen_at": record.last_seen_at,
        "ended_at": alert.ended_at,
        "raw_ref": alert.raw_ref,
        "repeat_count": record.repeat_count,
        "incident_id": record.incident_id or None,
    }


def _dead_row(dead: DeadLetter, now: datetime) -> dict[str, Any]:
    event = dead.event
    return {
        "id": new_id(),
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "integration_id": event.integration_id,
        "provider": event.provider,
        "received_at": event.received_at,
        "headers": orjson.dumps(event.headers).decode(),
        "body": event.body,
        "body_ref": event.body_ref,
        "error": dead.error,
        "attempts": event.attempts,
        "failed_at": now,
        "replayed_at": None,
    }
