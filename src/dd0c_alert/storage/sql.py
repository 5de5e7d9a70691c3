"""The store on SQLAlchemy Core: one implementation for SQLite and PostgreSQL,
dialect-aware where they differ.

On PostgreSQL the application role is subject to row-level security: every
transaction that touches tenant tables is first scoped to its tenant
(``tenancy.scope``), and the few lookups that must cross tenants (an API key's
tenant, all tenant ids, a dead letter's tenant, the idempotency purge) go through
``SECURITY DEFINER`` functions (migration 0004) that answer ids only.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from cryptography.fernet import InvalidToken

from dd0c_alert.correlation.model import (
    InhibitRule,
    Rules,
    Silence,
    TenantSettings,
    settings_dict,
    settings_from,
)
from dd0c_alert.correlation.rules import parse_matchers
from dd0c_alert.correlation.suggestions import History, Suggestion
from dd0c_alert.domain.fingerprint import native_fingerprint
from dd0c_alert.domain.ids import new_id
from dd0c_alert.providers import PROVIDERS

from . import incident_queries, reencrypt, rule_queries, suggestion_queries
from . import schema as t
from .accounts import AccountStore
from .batch import QueueSettle, SqlTransaction, no_queue
from .engine import refresh_statistics
from .migrate import schema_behind
from .notify_settings import SqlNotifySettings
from .outbox import SqlOutbox
from .ports import (
    AlertFilter,
    BatchOutcome,
    DeadLetter,
    IncidentAction,
    IncidentFilter,
    Integration,
    Page,
    RawEvent,
    ReplaySource,
    RuleKind,
    SchemaBehind,
    SuggestionVerdict,
    SuppressionMode,
    Tenant,
    Verdict,
)
from .product_sql import ProductStore, integration_from_row
from .retention import purge_tenant
from .rollups import reach_step, record_event
from .rows import alert_dict, decode_cursor, deploy_dict, encode_cursor, iso, month_of
from .secrets import SecretBox
from .tenancy import plan_for_values, scope, scoped

API_KEY_PREFIX = "dd0c_"


def hash_api_key(key: str) -> str:
    """API keys carry 256 random bits, so a fast hash is as safe as a slow one here
    and keeps per-request authentication cheap."""
    return hashlib.sha256(key.encode()).hexdigest()


def _fingerprint_spellings(given: str) -> list[str]:
    """A fingerprint as stored, or as the sender gave it: a provider's own key is
    stored as ``<provider>:<key>`` (hashed when long), and a sender looking up the
    key it sent should find its alert."""
    return [given, *(native_fingerprint(name, given) for name in sorted(PROVIDERS))]


def _row_security(conn: sa.Connection) -> bool:
    """Whether tenant rows are hidden behind row-level security (PostgreSQL), so a
    lookup across tenants must go through a migration 0004 function."""
    return conn.dialect.name == "postgresql"


def _tenant_ids(conn: sa.Connection) -> list[str]:
    if _row_security(conn):
        return list(conn.execute(sa.select(sa.func.dd0c_tenant_ids())).scalars())
    return list(conn.execute(sa.select(t.tenants.c.id).order_by(t.tenants.c.id)).scalars())


def _dead_letter_tenant(conn: sa.Connection, ref: str) -> str | None:
    """The tenant of a dead letter named by its id or its event id."""
    if _row_security(conn):
        return conn.execute(sa.select(sa.func.dd0c_dead_letter_tenant(ref))).scalar()
    dl = t.dead_letters
    return conn.execute(
        sa.select(dl.c.tenant_id).where((dl.c.id == ref) | (dl.c.event_id == ref)).limit(1)
    ).scalar()


#: One lock per tenant for the worker's transaction; see ``SqlStore.transaction``.
_CLAIM_TENANT = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended('dd0c:tenant:' || :tenant_id, 0))"
)


class SqlStore:
    def __init__(
        self,
        engine: sa.Engine,
        read_engine: sa.Engine,
        box: SecretBox,
        default_settings: TenantSettings | None = None,
        settle: QueueSettle | None = None,
        monthly_quota: int = 0,
        acknowledge: Callable[[BatchOutcome], None] | None = None,
    ) -> None:
        #: The operator's default monthly alert quota (0: none), for the 80 % warning.
        self.monthly_quota = monthly_quota
        self._engine = engine
        self._settle = settle or no_queue
        self._acknowledge = acknowledge
        self._read = read_engine
        self._box = box
        #: The schema was found to be one this version runs on (``ping``).
        self._schema_ok = False
        self.default_settings = default_settings or TenantSettings()

    def accounts(self) -> AccountStore:
        """Users, memberships, sessions, invitations and API keys on this database."""
        return AccountStore(self._engine, self._read)

    def outbox(self) -> SqlOutbox:
        """The notification outbox, on this store's database and secret box."""
        return SqlOutbox(self._engine, self._box)

    def notify_settings(self) -> SqlNotifySettings:
        """Routes and Slack settings, on this store's database and secret box."""
        return SqlNotifySettings(self._engine, self._box)

    # --- correlation configuration ----------------------------------------------------

    def tenant_settings(self, tenant_id: str) -> TenantSettings:
        with scoped(self._read, tenant_id) as conn:
            return self._settings_of(conn, tenant_id)

    def _settings_of(self, conn: sa.Connection, tenant_id: str) -> TenantSettings:
        stored = conn.execute(
            sa.select(t.tenant_settings.c.settings).where(
                t.tenant_settings.c.tenant_id == tenant_id
            )
        ).scalar()
        return settings_from(self.default_settings, stored or {})

    def tenant_config(self, tenant_id: str) -> tuple[TenantSettings, Rules]:
        with scoped(self._read, tenant_id) as conn:
            settings = self._settings_of(conn, tenant_id)
            deps = conn.execute(
                sa.select(t.service_dependencies).where(
                    t.service_dependencies.c.tenant_id == tenant_id
                )
            ).all()
            silence_rows = conn.execute(
                sa.select(t.silences).where(t.silences.c.tenant_id == tenant_id)
            ).all()
            inhibit_rows = conn.execute(
                sa.select(t.inhibit_rules).where(t.inhibit_rules.c.tenant_id == tenant_id)
            ).all()
        dependencies: dict[str, set[str]] = {}
        for row in deps:
            dependencies.setdefault(row.service, set()).add(row.depends_on)
        rules = Rules(
            silences=tuple(
                Silence(
                    id=row.id,
                    matchers=parse_matchers(row.matchers, stored=True),
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                    schedule=row.schedule,
                    author=row.author,
                    comment=row.comment,
                )
                for row in silence_rows
            ),
            inhibitions=tuple(
                InhibitRule(
                    id=row.id,
                    source=parse_matchers(row.source, stored=True),
                    target=parse_matchers(row.target, stored=True),
                    equal=tuple(row.equal),
                )
                for row in inhibit_rows
            ),
            dependencies={k: frozenset(v) for k, v in dependencies.items()},
        )
        return settings, rules

    def update_settings(self, tenant_id: str, changes: dict[str, Any]) -> TenantSettings:
        current, _ = self.tenant_config(tenant_id)
        merged = settings_from(current, changes)
        ts = t.tenant_settings
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(ts.delete().where(ts.c.tenant_id == tenant_id))
            conn.execute(
                ts.insert().values(
                    tenant_id=tenant_id,
                    settings=settings_dict(merged),
                    updated_at=datetime.now(UTC),
                )
            )
        return merged

    def set_dependencies(self, tenant_id: str, dependencies: dict[str, list[str]]) -> None:
        sd = t.service_dependencies
        rows = [
            {"tenant_id": tenant_id, "service": service, "depends_on": upstream}
            for service, upstreams in dependencies.items()
            for upstream in sorted(set(upstreams))
            if upstream != service
        ]
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(sd.delete().where(sd.c.tenant_id == tenant_id))
            if rows:
                conn.execute(sd.insert(), rows)

    # --- tenants, keys, integrations -------------------------------------------------

    def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(id=new_id(), name=name, created_at=datetime.now(UTC))
        with scoped(self._engine, tenant.id) as conn:
            conn.execute(
                t.tenants.insert().values(id=tenant.id, name=name, created_at=tenant.created_at)
            )
        return tenant

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with scoped(self._read, tenant_id) as conn:
            row = conn.execute(sa.select(t.tenants).where(t.tenants.c.id == tenant_id)).first()
        return None if row is None else Tenant(**row._asdict())

    def reencrypt_secrets(self) -> int:
        """Every tenant's stored secrets encrypted again with the first key of the
        secret key; how many (``reencrypt``)."""
        tenants = [tenant.id for tenant in self.list_tenants()]
        return reencrypt.reencrypt_secrets(self._engine, self._box, tenants)

    def list_tenants(self) -> list[Tenant]:
        """Every tenant; under row-level security one scoped read per tenant (this
        serves the scheduled jobs, not a request path)."""
        rows: list[sa.Row[Any]] = []
        with self._read.begin() as conn:
            for tenant_id in _tenant_ids(conn):
                scope(conn, tenant_id)
                rows += conn.execute(sa.select(t.tenants).where(t.tenants.c.id == tenant_id))
        return [Tenant(**row._asdict()) for row in rows]

    def create_api_key(self, tenant_id: str, name: str) -> str:
        key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(
                t.api_keys.insert().values(
                    id=new_id(),
                    tenant_id=tenant_id,
                    name=name,
                    key_hash=hash_api_key(key),
                    created_at=datetime.now(UTC),
                )
            )
        return key

    def tenant_for_api_key(self, key: str) -> str | None:
        key_hash = hash_api_key(key)
        with self._read.begin() as conn:
            if _row_security(conn):
                query = sa.select(sa.func.dd0c_tenant_for_api_key(key_hash))
            else:
                query = sa.select(t.api_keys.c.tenant_id).where(t.api_keys.c.key_hash == key_hash)
            tenant_id: str | None = conn.execute(query).scalar()
        return tenant_id

    def create_integration(
        self, tenant_id: str, provider: str, name: str, secret: str
    ) -> Integration:
        integration = Integration(
            id=new_id(),
            tenant_id=tenant_id,
            provider=provider,
            name=name,
            secret=secret,
            created_at=datetime.now(UTC),
        )
        with scoped(self._engine, tenant_id) as conn:
            conn.execute(
                t.integrations.insert().values(
                    id=integration.id,
                    tenant_id=tenant_id,
                    provider=provider,
                    name=name,
                    secret_encrypted=self._box.encrypt(secret),
                    created_at=integration.created_at,
                )
            )
            detail = {"integration_id": integration.id, "provider": provider}
            record_event(conn, tenant_id, "integration.created", detail, integration.created_at)
            reach_step(conn, tenant_id, "integration_created", integration.created_at, detail)
        return integration

    def integrations_for(self, tenant_id: str, provider: str) -> list[Integration]:
        query = (
            sa.select(t.integrations)
            .where(t.integrations.c.tenant_id == tenant_id, t.integrations.c.provider == provider)
            .order_by(t.integrations.c.id)
        )
        with scoped(self._read, tenant_id) as conn:
            rows = conn.execute(query).all()
        return [integration_from_row(row, self._box) for row in rows]

    def secret_key_reads(self) -> bool | None:
        """Whether this store's key decrypts a stored integration secret (the oldest);
        None when none is stored. A key from elsewhere let every role start and say
        ready while it refused every webhook. On PostgreSQL the tenant holding it is
        named by a migration 0020 function, and the secret read in its scope."""
        column = t.integrations.c.secret_encrypted
        oldest = sa.select(column).order_by(t.integrations.c.id).limit(1)
        with self._read.begin() as conn:
            if _row_security(conn):
                tenant_id = conn.execute(sa.select(sa.func.dd0c_a_tenant_with_integration()))
                found = tenant_id.scalar()
                if found is None:
                    return None
                scope(conn, found)
                oldest = oldest.where(t.integrations.c.tenant_id == found)
            token = conn.execute(oldest).scalar()
        if token is None:
            return None
        try:
            self._box.decrypt(token)
        except InvalidToken:
            return False
        return True

    def alerts_this_month(self, tenant_id: str) -> int:
        """Alerts the worker processed this month: what the quota counts."""
        ua = t.usage_alerts
        query = sa.select(ua.c.alerts).where(
            ua.c.tenant_id == tenant_id, ua.c.month == month_of(time.time())
        )
        with scoped(self._read, tenant_id) as conn:
            return conn.execute(query).scalar() or 0

    def product(self) -> ProductStore:
        """Integrations management, analytics, usage, audit log, product events."""
        return ProductStore(self._engine, self._read, self._box)

    # --- the worker's batch -----------------------------------------------------------

    @contextmanager
    def transaction(self, tenant_ids: Collection[str]) -> Iterator[SqlTransaction]:
        """The worker's transaction, holding an exclusive claim on ``tenant_ids``.

        Several ``correlate`` processes share one PostgreSQL: two of them must never
        both load a tenant's open incidents and fingerprints and then write what each
        decided from that stale view. So the transaction first takes a
        transaction-level advisory lock per tenant, in sorted order (every worker
        takes them in the same order, so they queue instead of deadlocking). A lock
        held by the database transaction is released exactly at its commit or
        rollback: it cannot expire while the writes it protects are still running,
        nor outlive them, as a lease in Redis could. The reads that follow the lock see
        the previous holder's commit because PostgreSQL's default READ COMMITTED
        takes a fresh snapshot per statement. On SQLite, ``BEGIN IMMEDIATE``
        already serialises writers.
        """
        claimed = sorted(set(tenant_ids))
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                plan_for_values(conn)
                for tenant_id in claimed:
                    conn.execute(_CLAIM_TENANT, {"tenant_id": tenant_id})
            tx = SqlTransaction(conn, self._settle, claimed, self.monthly_quota)
            yield tx
        if tx.settled is not None and self._acknowledge is not None:
            self._acknowledge(tx.settled)

    # --- reads ------------------------------------------------------------------------

    def _page(
        self,
        table: sa.Table,
        tenant_id: str,
        conditions: list[sa.ColumnElement[bool]],
        limit: int,
        cursor: str | None,
        render: Any,
    ) -> Page:
        query = sa.select(table).where(table.c.tenant_id == tenant_id, *conditions)
        if cursor:
            query = query.where(table.c.id < decode_cursor(cursor))
        query = query.order_by(table.c.id.desc()).limit(limit + 1)
        with scoped(self._read, tenant_id) as conn:
            rows = conn.execute(query).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return Page(
            items=[render(row) for row in rows],
            next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
        )

    def list_alerts(
        self, tenant_id: str, filters: AlertFilter, limit: int, cursor: str | None
    ) -> Page:
        a = t.alerts
        conditions: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (a.c.source, filters.source),
            (a.c.status, filters.status),
            (a.c.service, filters.service),
        ):
            if value is not None:
                conditions.append(column == value)
        if filters.fingerprint is not None:
            conditions.append(a.c.fingerprint.in_(_fingerprint_spellings(filters.fingerprint)))
        if filters.since is not None:
            conditions.append(a.c.started_at >= filters.since)
        if filters.until is not None:
            conditions.append(a.c.started_at < filters.until)
        return self._page(a, tenant_id, conditions, limit, cursor, alert_dict)

    def get_alert(self, tenant_id: str, alert_id: str) -> dict[str, Any] | None:
        a = t.alerts
        with scoped(self._read, tenant_id) as conn:
            row = conn.execute(
                sa.select(a).where(a.c.tenant_id == tenant_id, a.c.id == alert_id)
            ).first()
        return None if row is None else alert_dict(row)

    def list_deploys(
        self, tenant_id: str, filters: AlertFilter, limit: int, cursor: str | None
    ) -> Page:
        d = t.deploys
        conditions: list[sa.ColumnElement[bool]] = []
        for column, value in (
            (d.c.source, filters.source),
            (d.c.status, filters.status),
            (d.c.service, filters.service),
        ):
            if value is not None:
                conditions.append(column == value)
        if filters.since is not None:
            conditions.append(d.c.started_at >= filters.since)
        if filters.until is not None:
            conditions.append(d.c.started_at < filters.until)
        return self._page(d, tenant_id, conditions, limit, cursor, deploy_dict)

    def list_dead_letters(self, tenant_id: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, of one tenant or (``None``, the admin's view) of all: under
        row-level security that reads each tenant's newest in turn."""
        dl = t.dead_letters
        query = sa.select(
            dl.c.id,
            dl.c.event_id,
            dl.c.tenant_id,
            dl.c.provider,
            dl.c.error,
            dl.c.attempts,
            dl.c.failed_at,
            dl.c.replayed_at,
        ).order_by(dl.c.id.desc())
        rows: list[sa.Row[Any]] = []
        with self._read.begin() as conn:
            if tenant_id is None and not _row_security(conn):
                rows += conn.execute(query.limit(limit))
            else:
                for each in [tenant_id] if tenant_id is not None else _tenant_ids(conn):
                    scope(conn, each)
                    rows += conn.execute(query.where(dl.c.tenant_id == each).limit(limit))
        rows = sorted(rows, key=lambda row: row.id, reverse=True)[:limit]
        return [
            {
                **row._asdict(),
                "failed_at": iso(row.failed_at),
                "replayed_at": iso(row.replayed_at),
            }
            for row in rows
        ]

    def get_dead_letter(self, dead_letter_id: str) -> DeadLetter | None:
        dl = t.dead_letters
        with self._read.begin() as conn:
            tenant_id = _dead_letter_tenant(conn, dead_letter_id)
            if tenant_id is None:
                return None
            scope(conn, tenant_id)
            row = conn.execute(
                sa.select(dl).where(
                    dl.c.tenant_id == tenant_id,
                    (dl.c.id == dead_letter_id) | (dl.c.event_id == dead_letter_id),
                )
            ).first()
        if row is None:
            return None
        event = RawEvent(
            event_id=row.event_id,
            tenant_id=row.tenant_id,
            integration_id=row.integration_id,
            provider=row.provider,
            received_at=row.received_at,
            headers=orjson.loads(row.headers),
            body=row.body,
            body_ref=row.body_ref,
            attempts=row.attempts,
        )
        return DeadLetter(event=event, error=row.error)

    def mark_replayed(self, dead_letter_id: str) -> None:
        dl = t.dead_letters
        with self._engine.begin() as conn:
            tenant_id = _dead_letter_tenant(conn, dead_letter_id)
            if tenant_id is None:
                return
            scope(conn, tenant_id)
            conn.execute(
                dl.update()
                .where(
                    dl.c.tenant_id == tenant_id,
                    (dl.c.id == dead_letter_id) | (dl.c.event_id == dead_letter_id),
                )
                .values(replayed_at=datetime.now(UTC))
            )

    def close(self) -> None:
        self._engine.dispose()
        self._read.dispose()

    def purge_expired(self, tenant_id: str, cutoff: datetime) -> dict[str, int]:
        return purge_tenant(self._engine, self._read, tenant_id, cutoff)

    def connections_in_use(self) -> int:
        """Connections checked out of this process's pool (0 where it is not a
        queue pool, as with SQLite's per-thread connections)."""
        checked_out = getattr(self._engine.pool, "checkedout", None)
        return int(checked_out()) if callable(checked_out) else 0

    def ping(self) -> None:
        """The database answers and its schema is one this version runs on (checked
        until it is: a schema never goes back). A role started before ``migrate`` ran
        (a Kubernetes rollout starts the new pods beside the migration job) read ready
        and failed every webhook and batch on missing tables and columns."""
        with self._read.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            if self._schema_ok:
                return
            behind = schema_behind(conn)
            if behind is not None:
                raise SchemaBehind(behind)
            self._schema_ok = True

    def refresh_statistics(self) -> None:
        refresh_statistics(self._engine)

    # --- incidents, rules and the suppression log (see incident_queries) --------------

    def list_incidents(
        self, tenant_id: str, filters: IncidentFilter, limit: int, cursor: str | None
    ) -> Page:
        return incident_queries.list_incidents(self._read, tenant_id, filters, limit, cursor)

    def get_incident(self, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
        return incident_queries.get_incident(self._read, tenant_id, incident_id)

    def notification_detail(self, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
        return incident_queries.notification_detail(self._read, tenant_id, incident_id)

    def digest(self, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        return incident_queries.digest(self._read, tenant_id, start, end)

    def incident_action(
        self,
        tenant_id: str,
        incident_id: str,
        action: IncidentAction,
        snooze_minutes: int = 60,
        *,
        actor: str = incident_queries.ACTOR,
    ) -> dict[str, Any] | None:
        return incident_queries.transition(
            self._engine, tenant_id, incident_id, action, snooze_minutes, actor
        )

    def add_note(
        self, tenant_id: str, incident_id: str, text: str, *, actor: str = "api"
    ) -> dict[str, Any] | None:
        return incident_queries.add_note(self._engine, tenant_id, incident_id, text, actor)

    def split_incident(
        self, tenant_id: str, incident_id: str, alert_ids: list[str], *, actor: str = "api"
    ) -> dict[str, Any] | None:
        return incident_queries.split(self._engine, tenant_id, incident_id, alert_ids, actor)

    def merge_incident(
        self, tenant_id: str, incident_id: str, into: str, *, actor: str = "api"
    ) -> dict[str, Any] | None:
        return incident_queries.merge(self._engine, tenant_id, incident_id, into, actor)

    def add_feedback(
        self, tenant_id: str, incident_id: str, verdict: Verdict, *, actor: str = "api"
    ) -> dict[str, Any] | None:
        return incident_queries.add_feedback(self._engine, tenant_id, incident_id, verdict, actor)

    def alert_decision(self, tenant_id: str, alert_id: str) -> dict[str, Any] | None:
        return incident_queries.alert_decision(self._read, tenant_id, alert_id)

    def list_suppressions(
        self, tenant_id: str, mode: SuppressionMode | None, limit: int, cursor: str | None
    ) -> Page:
        return incident_queries.list_suppressions(self._read, tenant_id, mode, limit, cursor)

    def replay_suppression(self, tenant_id: str, decision_id: str) -> dict[str, Any] | None:
        return incident_queries.mark_replayed(self._engine, tenant_id, decision_id)

    def list_silences(self, tenant_id: str) -> list[dict[str, Any]]:
        return rule_queries.list_silences(self._read, tenant_id)

    def create_silence(self, tenant_id: str, silence: Silence) -> dict[str, Any]:
        return rule_queries.create_silence(self._engine, tenant_id, silence)

    def update_silence(self, tenant_id: str, silence: Silence) -> dict[str, Any] | None:
        return rule_queries.update_silence(self._engine, tenant_id, silence)

    def list_inhibitions(self, tenant_id: str) -> list[dict[str, Any]]:
        return rule_queries.list_inhibitions(self._read, tenant_id)

    def create_inhibition(self, tenant_id: str, rule: InhibitRule) -> dict[str, Any]:
        return rule_queries.create_inhibition(self._engine, tenant_id, rule)

    def update_inhibition(self, tenant_id: str, rule: InhibitRule) -> dict[str, Any] | None:
        return rule_queries.update_inhibition(self._engine, tenant_id, rule)

    def delete_rule(self, tenant_id: str, kind: RuleKind, rule_id: str) -> bool:
        return rule_queries.delete_rule(self._engine, tenant_id, kind, rule_id)

    # --- suggestions and the what-if replay (see suggestion_queries) -------------------

    def suggestion_history(self, tenant_id: str, now: datetime) -> History:
        with scoped(self._read, tenant_id) as conn:
            return suggestion_queries.load_history(conn, tenant_id, now)

    def save_suggestions(self, tenant_id: str, found: Sequence[Suggestion], now: datetime) -> None:
        with scoped(self._engine, tenant_id) as conn:
            suggestion_queries.save_suggestions(conn, tenant_id, found, now)

    def request_mute(self, tenant_id: str, incident_id: str, actor: str) -> dict[str, Any] | str:
        protected = self.tenant_config(tenant_id)[0].never_suppress_services
        with scoped(self._engine, tenant_id) as conn:
            return suggestion_queries.request_mute(
                conn, tenant_id, incident_id, actor, datetime.now(UTC), protected
            )

    def list_suggestions(
        self,
        tenant_id: str,
        status: str | None,
        kind: str | None,
        limit: int,
        cursor: str | None,
    ) -> Page:
        after = decode_cursor(cursor) if cursor else None
        with scoped(self._read, tenant_id) as conn:
            page = suggestion_queries.list_suggestions(conn, tenant_id, status, kind, limit, after)
        return Page(page.items, encode_cursor(page.next_cursor) if page.next_cursor else None)

    def accept_suggestion(
        self, tenant_id: str, suggestion_id: str, now: datetime
    ) -> SuggestionVerdict | None:
        settings, _ = self.tenant_config(tenant_id)
        with scoped(self._engine, tenant_id) as conn:
            return suggestion_queries.accept(conn, tenant_id, suggestion_id, now, settings)

    def dismiss_suggestion(
        self, tenant_id: str, suggestion_id: str, now: datetime
    ) -> SuggestionVerdict | None:
        with scoped(self._engine, tenant_id) as conn:
            return suggestion_queries.dismiss(conn, tenant_id, suggestion_id, now)

    def replay_source(
        self,
        tenant_id: str,
        since: datetime,
        until: datetime,
        limit: int,
        deploy_lookback: timedelta,
    ) -> ReplaySource:
        with scoped(self._read, tenant_id) as conn:
            return suggestion_queries.replay_source(
                conn, tenant_id, since, until, limit, deploy_lookback
            )
