"""Tables, as SQLAlchemy Core metadata. Alembic migrations are the source of truth for
deployed databases; this module mirrors them for queries and for the migration check
in the test suite.

Times are stored as UTC. JSON columns hold labels, links and headers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeDecorator

metadata = sa.MetaData()


#: Times already written as text, by value: a batch writes the same few (the event's
#: receipt, the alert's start, the batch's clock) on every alert, decision and count
#: row, and ``isoformat`` costs a microsecond a time, ~5 % of a storm's worker time.
#: Cleared when full rather than evicting one by one: the next batch refills it.
_TEXTS: dict[datetime, str] = {}
_TEXTS_MAX = 4096


def _sqlite_text(value: datetime | None) -> str | None:
    """A time as SQLite's DATETIME column stores it (UTC, ``2026-11-27 10:00:00.123456``),
    from ``_TEXTS`` when this value was written before."""
    if value is None:
        return None
    text = _TEXTS.get(value)
    if text is None:
        text = _utc_text(value)
        if len(_TEXTS) >= _TEXTS_MAX:
            _TEXTS.clear()
        _TEXTS[value] = text
    return text


def _utc_text(value: datetime) -> str:
    """In one step: ``isoformat`` (C) instead of SQLAlchemy's ``%``-formatting of seven
    fields."""
    if value.tzinfo is None:  # a naive time is UTC, as everywhere else
        return value.isoformat(" ", "microseconds")
    if value.tzinfo is not UTC:  # most are UTC already, and astimezone is the cost
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the "+00:00"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every dialect."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: sa.Dialect) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_text
        return super().bind_processor(dialect)

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        # A naive time is UTC (never the server's local time), as everywhere else.
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.tzinfo is not UTC:  # most are UTC already, and astimezone is the cost
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: sa.Dialect, coltype: object) -> Any:
        if dialect.name == "sqlite":  # one step from SQLite's text, as for binds
            return _sqlite_time
        return super().result_processor(dialect, coltype)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = utc_from_text(value) if isinstance(value, str) else value
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _sqlite_time(value: str | None) -> datetime | None:
    return None if value is None else utc_from_text(value)


def utc_from_text(value: str) -> datetime:
    """A time SQLite returns (the naive UTC text ``_utc_text`` wrote) as an aware UTC
    datetime. The offset goes into the text parsed: ``datetime.replace(tzinfo=...)``
    after parsing cost four times the parse (1.1 us), on every time of every row read."""
    try:
        return datetime.fromisoformat(value + "+00:00")
    except ValueError:  # the text had an offset of its own
        return datetime.fromisoformat(value).astimezone(UTC)


JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
#: Partial index predicates, written the same way in the queries that rely on them
#: (a planner uses a partial index only when the query states its condition).
LIVE_INCIDENT = "merged_into IS NULL"
FLAPPED = "flapping != '[]'"


def gin_index(name: str, column: str) -> sa.Index:
    """A containment index on a JSONB document (``labels @> {...}``); PostgreSQL only,
    SQLite has no such index and scans."""
    return sa.Index(
        name, column, postgresql_using="gin", postgresql_ops={column: "jsonb_path_ops"}
    ).ddl_if(dialect="postgresql")


tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("rate_limit_per_second", sa.Float, nullable=True),
    sa.Column("monthly_quota", sa.Integer, nullable=True),
    #: A preset of ``storage.plans`` (``free``, ``self-hosted``); None is ``self-hosted``.
    sa.Column("plan", sa.String(32), nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # read | write | admin (migration 0008: keys made before it are admin keys)
    sa.Column("scope", sa.String(8), nullable=False, server_default="admin"),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    #: The user who made it (migration 0019); NULL for keys made before, by the
    #: command line or by another key. Removing or demoting them revokes theirs.
    sa.Column("created_by", sa.String(32), nullable=True),
)

# --- accounts (migration 0008) ------------------------------------------------------
#: Not a tenant table: a user may belong to several tenants. On PostgreSQL a row is
#: visible only to a transaction scoped to a tenant the user is a member of, or to the
#: user themself (``app.user_id``); lookups by email go through a definer function.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    #: lower-cased: unique case-insensitively
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("password_changed_at", UTCDateTime, nullable=True),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_memberships_user", "user_id"),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("family_id", sa.String(32), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("replaced_by", sa.String(32), nullable=True),
    sa.Index("ix_refresh_tokens_user", "tenant_id", "user_id"),
    sa.Index("ix_refresh_tokens_family", "tenant_id", "family_id"),
)

invitations = sa.Table(
    "invitations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("invited_by", sa.String(400), nullable=False),
    #: The user id of the person who invited (0022; NULL: the command line's keys, or
    #: before): their removal or demotion withdraws what they may no longer grant.
    sa.Column("invited_by_user", sa.String(32), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("accepted_at", UTCDateTime, nullable=True),
    sa.Index("ix_invitations_tenant", "tenant_id", "created_at"),
)

#: Not a tenant table: visible on PostgreSQL only to its user (``app.user_id``).
password_resets = sa.Table(
    "password_resets",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=True),
)

integrations = sa.Table(
    "integrations",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    #: The secret before the last rotation, still accepted until ``previous_secret_until``.
    sa.Column("previous_secret_encrypted", sa.Text, nullable=True),
    sa.Column("previous_secret_until", UTCDateTime, nullable=True),
    sa.Index("ix_integrations_tenant_provider", "tenant_id", "provider"),
)

# The durable hand-off between ingestion and processing. On SQLite these three tables
# live in the queue's own file (``sqlite_queue.queue_file``), so admission never waits
# for the worker's write lock; on PostgreSQL (pgmq for the queue itself) in the database.
ingest_queue = sa.Table(
    "ingest_queue",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("integration_id", sa.String(32), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("body_ref", sa.String(300), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("visible_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Index("ix_ingest_queue_visible", "visible_at", "seq"),
    sa.Index("ix_ingest_queue_tenant", "tenant_id", "seq"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_idempotency_expires", "expires_at"),
)

usage = sa.Table(
    "usage",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("events", sa.Integer, nullable=False),
)

# SQLite's inbox: the events a worker transaction stored, written in that transaction.
# The queue file is acknowledged after the commit; an event found here when claimed was
# stored already (the process died in between) and is dropped instead of run twice.
# Rows go once the queue has let go of their events (migration 0015; not on PostgreSQL,
# whose queue is acknowledged in the worker's own transaction).
processed_events = sa.Table(
    "processed_events",
    metadata,
    sa.Column("event_id", sa.String(32), primary_key=True),
    sa.Column("processed_at", sa.Float, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("source_ref", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("service", sa.String(256), nullable=False),
    sa.Column("environment", sa.String(256), nullable=False),
    sa.Column("resource", sa.String(512), nullable=False),
    sa.Column("labels", JSONDoc, nullable=False),
    sa.Column("links", JSONDoc, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime, nullable=True),
    sa.Column("raw_ref", sa.String(300), nullable=False),
    sa.Column("repeat_count", sa.Integer, nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=True),
    sa.Index("ix_alerts_tenant_id", "tenant_id", "id"),
    sa.Index("ix_alerts_tenant_service", "tenant_id", "service", "id"),
    sa.Index("ix_alerts_tenant_started", "tenant_id", "started_at"),
    # A batch's per-fingerprint history (migration 0013 says why), and every lookup by
    # fingerprint (0016 dropped the older (tenant, fingerprint, status) one).
    sa.Index("ix_alerts_tenant_fingerprint_started", "tenant_id", "fingerprint", "started_at"),
    # At most one firing alert per fingerprint: repeats fold into it.
    sa.Index(
        "ux_alerts_active_fingerprint",
        "tenant_id",
        "fingerprint",
        unique=True,
        sqlite_where=sa.text("status = 'firing'"),
        postgresql_where=sa.text("status = 'firing'"),
    ),
    gin_index("ix_alerts_labels", "labels"),
)
#: An incident's alerts, worst first in the order a notification shows them (most
#: repeated, then earliest, within each severity): its top alerts are read from the
#: front of each severity's range, not sorted out of every alert of a storm.
#: Migration 0017 built it in place of the (tenant, incident) index, its prefix.
sa.Index(
    "ix_alerts_incident_worst",
    alerts.c.tenant_id,
    alerts.c.incident_id,
    alerts.c.severity,
    alerts.c.repeat_count.desc(),
    alerts.c.started_at,
)

deploys = sa.Table(
    "deploys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("source", sa.String(40), nullable=False),
    sa.Column("source_ref", sa.String(300), nullable=False),
    sa.Column("service", sa.String(256), nullable=False),
    sa.Column("environment", sa.String(256), nullable=False),
    sa.Column("version", sa.String(256), nullable=False),
    sa.Column("commit", sa.String(256), nullable=False),
    sa.Column("author", sa.String(256), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("raw_ref", sa.String(300), nullable=False),
    sa.UniqueConstraint("tenant_id", "source", "source_ref", name="ux_deploys_source_ref"),
    sa.Index("ix_deploys_tenant_id", "tenant_id", "id"),
    sa.Index("ix_deploys_tenant_service", "tenant_id", "service", "started_at"),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("integration_id", sa.String(32), nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=True),
    sa.Column("body_ref", sa.String(300), nullable=True),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("failed_at", UTCDateTime, nullable=False),
    sa.Column("replayed_at", UTCDateTime, nullable=True),
    sa.Index("ix_dead_letters_tenant", "tenant_id", "id"),
)

tenant_settings = sa.Table(
    "tenant_settings",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("settings", JSONDoc, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

service_dependencies = sa.Table(
    "service_dependencies",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("service", sa.String(256), primary_key=True),
    sa.Column("depends_on", sa.String(256), primary_key=True),
)

silences = sa.Table(
    "silences",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("matchers", sa.Text, nullable=False),
    sa.Column("starts_at", UTCDateTime, nullable=True),
    sa.Column("ends_at", UTCDateTime, nullable=True),
    sa.Column("schedule", sa.String(200), nullable=False),
    sa.Column("author", sa.String(200), nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_silences_tenant", "tenant_id"),
)

inhibit_rules = sa.Table(
    "inhibit_rules",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("equal", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_inhibit_rules_tenant", "tenant_id"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("services", JSONDoc, nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime, nullable=True),
    sa.Column("acknowledged_at", UTCDateTime, nullable=True),
    sa.Column("snoozed_until", UTCDateTime, nullable=True),
    sa.Column("alert_count", sa.Integer, nullable=False),
    sa.Column("firing", sa.Integer, nullable=False),
    #: Deliveries folded into its alerts without a page (``IncidentState.folded``).
    sa.Column("folded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("probable_root", sa.String(256), nullable=False),
    sa.Column("deploys", JSONDoc, nullable=False),
    sa.Column("noise_score", sa.Integer, nullable=False),
    sa.Column("noise_reasons", JSONDoc, nullable=False),
    #: A bounded sample (correlation_sql.MAX_STORED_FINGERPRINTS), not every one.
    sa.Column("fingerprints", JSONDoc, nullable=False),
    sa.Column("flapping", JSONDoc, nullable=False),
    sa.Column("paged", sa.Boolean, nullable=False),
    sa.Column("merged_into", sa.String(32), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_incidents_tenant_id", "tenant_id", "id"),
    sa.Index("ix_incidents_tenant_last", "tenant_id", "last_at"),
    sa.Index("ix_incidents_tenant_status", "tenant_id", "status", "id"),
    sa.Index("ix_incidents_tenant_merged", "tenant_id", "merged_into"),
    sa.Index("ix_incidents_tenant_first", "tenant_id", "first_at"),
    # Analytics (migration 0014): MTTA/MTTR read the window's live incidents from the
    # index alone, and the flapping list walks only the incidents that flapped.
    sa.Index(
        "ix_incidents_tenant_first_times",
        "tenant_id",
        "first_at",
        "acknowledged_at",
        "resolved_at",
        "merged_into",  # always null here, but SQLite reads only the index with it
        sqlite_where=sa.text(LIVE_INCIDENT),
        postgresql_where=sa.text(LIVE_INCIDENT),
    ),
    sa.Index(
        "ix_incidents_tenant_flapping",
        "tenant_id",
        "first_at",
        sqlite_where=sa.text(f"{FLAPPED} AND {LIVE_INCIDENT}"),
        postgresql_where=sa.text(f"{FLAPPED}::jsonb AND {LIVE_INCIDENT}"),
    ),
    gin_index("ix_incidents_services", "services"),
)

incident_services = sa.Table(
    "incident_services",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("service", sa.String(256), primary_key=True),
    sa.Column("incident_id", sa.String(32), primary_key=True),
)

# One search document per live incident (``storage.incident_search``): its title,
# services and the distinct label names and values of its alerts, lower-cased. Indexed
# by trigrams: on SQLite by the FTS5 table ``incident_search_fts`` (migration 0010,
# kept by triggers on this table, ``seq`` its rowid), on PostgreSQL by pg_trgm.
incident_search = sa.Table(
    "incident_search",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.UniqueConstraint("tenant_id", "incident_id", name="ux_incident_search_incident"),
    sa.Index(
        "ix_incident_search_trigrams",
        "text",
        postgresql_using="gin",
        postgresql_ops={"text": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql"),
)

_SUPPRESSED = "suppressed_by IS NOT NULL OR would_suppress IS NOT NULL"

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("alert_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("reasons", JSONDoc, nullable=False),
    sa.Column("page", sa.Boolean, nullable=False),
    sa.Column("flapping", sa.Boolean, nullable=False),
    sa.Column("suppressed_by", sa.String(32), nullable=True),
    sa.Column("would_suppress", sa.String(32), nullable=True),
    sa.Column("inhibited_by", sa.String(32), nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("replayed_at", UTCDateTime, nullable=True),
    sa.Index("ix_decisions_tenant_incident", "tenant_id", "incident_id", "at"),
    sa.Index("ix_decisions_tenant_alert", "tenant_id", "alert_id"),
    # The suppression log: the few decisions a rule suppressed or would have.
    sa.Index(
        "ix_decisions_tenant_suppression",
        "tenant_id",
        "id",
        sqlite_where=sa.text(_SUPPRESSED),
        postgresql_where=sa.text(_SUPPRESSED),
    ),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_feedback_tenant_incident", "tenant_id", "incident_id"),
)

# What people did to an incident (ack, resolve, snooze, reopen, feedback, replay), for
# its timeline beside the engine's decisions.
incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_incident_events_tenant_incident", "tenant_id", "incident_id", "at"),
)

suggestions = sa.Table(
    "suggestions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("key", sa.String(300), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("evidence", JSONDoc, nullable=False),
    sa.Column("proposal", JSONDoc, nullable=False),
    #: The merges and splits it learnt from (migration 0010).
    sa.Column("cites", JSONDoc, nullable=False, server_default="[]"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("tenant_id", "kind", "key", name="ux_suggestions_key"),
)

# --------------------------------------------------------------------------- notifications

# The outbox: written by the worker in its batch transaction (and by human actions in
# theirs), read and deleted by the notifier when it plans deliveries from it.
notification_intents = sa.Table(
    "notification_intents",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The W3C traceparent of the decision that made the intent (0011).
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.Index("ix_notification_intents_tenant", "tenant_id", "seq"),
)

_LIVING = sa.text("kind = 'message'")

# One row per message to one destination: a Slack channel's living message of an
# incident (kind ``message``, updated in place: ``version_wanted`` > ``version_sent``
# means it is behind), a thread reply, a mail, a webhook event.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("incident_id", sa.String(32), nullable=False),
    sa.Column("destination_type", sa.String(16), nullable=False),
    sa.Column("destination", sa.Text, nullable=False),
    sa.Column("route", sa.String(200), nullable=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("leased_until", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("version_wanted", sa.Integer, nullable=False, server_default="1"),
    sa.Column("version_sent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_ref", sa.Text, nullable=True),
    sa.Column("post_started_at", UTCDateTime, nullable=True),
    sa.Column("detail", JSONDoc, nullable=False),
    # The trace the delivery continues: its latest intent's (0011).
    sa.Column("traceparent", sa.String(64), nullable=True),
    sa.Index("ix_deliveries_due", "tenant_id", "status", "next_attempt_at"),
    sa.Index("ix_deliveries_incident", "tenant_id", "incident_id"),
    sa.Index("ix_deliveries_tenant_id", "tenant_id", "id"),
    sa.Index(
        "ux_deliveries_living_message",
        "tenant_id",
        "incident_id",
        "destination_type",
        "destination",
        unique=True,
        sqlite_where=_LIVING,
        postgresql_where=_LIVING,
    ),
)

delivery_attempts = sa.Table(
    "delivery_attempts",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("delivery_id", sa.String(32), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index("ix_delivery_attempts_delivery", "tenant_id", "delivery_id"),
)

# Routes in evaluation order; ``definition`` is the API document, webhook secrets
# encrypted like integration secrets.
routes = sa.Table(
    "routes",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("definition", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_routes_tenant_position", "tenant_id", "position"),
)

slack_settings = sa.Table(
    "slack_settings",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("bot_token_encrypted", sa.Text, nullable=False),
    sa.Column("signing_secret_encrypted", sa.Text, nullable=False),
    sa.Column("default_channel", sa.String(200), nullable=False),
    sa.Column("team_id", sa.String(32), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_slack_settings_team", "team_id"),
)

# Whether a destination works: ``failing`` and ``rate_limited`` while retries go on,
# ``stopped`` after a permanent error (a revoked token, an archived channel).
destination_health = sa.Table(
    "destination_health",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("destination_type", sa.String(16), primary_key=True),
    sa.Column("destination", sa.Text, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# An incident whose first page (``event``: ``opened``, or ``reopened`` when it was
# never announced) a route's quiet hours held back, recorded as the notifier planned
# it so (0021): the notifier sends it later from here, whatever the routes became.
held_pages = sa.Table(
    "held_pages",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("incident_id", sa.String(32), primary_key=True),
    sa.Column("event", sa.String(32), nullable=False),
    sa.Column("held_at", UTCDateTime, nullable=False),
)


# --------------------------------------------------------------------------- analytics, audit

# Hourly counters written by the worker in its batch transaction (one upsert per key a
# batch touches): analytics read these instead of scanning alerts. ``hour`` is the
# alert's event time truncated to the hour.
rollups_hourly = sa.Table(
    "rollups_hourly",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("service", sa.String(256), primary_key=True),
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("severity", sa.String(16), primary_key=True),
    sa.Column("alerts", sa.Integer, nullable=False),
    sa.Column("incidents_opened", sa.Integer, nullable=False),
    sa.Column("pages", sa.Integer, nullable=False),
    # Analytics of one service (migration 0010).
    sa.Index("ix_rollups_hourly_service", "tenant_id", "service", "hour"),
)

# The same counts per day and one dimension at a time (``dimension`` ``all`` with
# ``value`` '', ``source``, ``service``, ``severity``): a 90-day window reads about a
# hundred rows a day instead of every hour x service x source x severity (migration
# 0010; analytics without a service filter read whole days here, the edges hourly).
rollups_daily = sa.Table(
    "rollups_daily",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("day", UTCDateTime, primary_key=True),
    sa.Column("dimension", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(256), primary_key=True),
    sa.Column("alerts", sa.Integer, nullable=False),
    sa.Column("incidents_opened", sa.Integer, nullable=False),
    sa.Column("pages", sa.Integer, nullable=False),
)

# Canonical alert events the worker processed per month (processing time): what the
# plan's quota counts (``domain.plans``). Apart from ``usage`` (deliveries, written by
# the ingest writer) so the worker's transaction never holds a row the webhook path waits on.
usage_alerts = sa.Table(
    "usage_alerts",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("alerts", sa.Integer, nullable=False),
)

# Alert events per fingerprint and day (event time), for the top noisy fingerprints.
rollups_fingerprint_daily = sa.Table(
    "rollups_fingerprint_daily",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("day", UTCDateTime, primary_key=True),
    sa.Column("fingerprint", sa.String(200), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("alerts", sa.Integer, nullable=False),
    # The exact window sums of the top-noisy candidates only (migration 0012).
    sa.Index("ix_rollups_fingerprint_daily_fp", "tenant_id", "fingerprint", "day"),
)

# Each completed day's most frequent fingerprints (``storage.top_daily``), written once
# by the scheduled jobs: the candidates for a window's top noisy fingerprints, so
# analytics never groups the window's every fingerprint (migration 0012), ranked by the
# day's count as it was when listed (migration 0014).
rollups_top_daily = sa.Table(
    "rollups_top_daily",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("day", UTCDateTime, primary_key=True),
    sa.Column("fingerprint", sa.String(200), primary_key=True),
    sa.Column("alerts", sa.Integer, nullable=False, server_default="0"),
)

# Webhook deliveries per integration, hour (receive time) and outcome (``accepted`` or
# the refusal's reason code), flushed by each ingest process from memory.
integration_stats = sa.Table(
    "integration_stats",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("integration_id", sa.String(32), primary_key=True),
    sa.Column("hour", UTCDateTime, primary_key=True),
    sa.Column("outcome", sa.String(40), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
    sa.Column("last_at", UTCDateTime, nullable=False),
)

# Who changed what, when, from where. Append-only: nothing updates or deletes a row
# except retention.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target_type", sa.String(40), nullable=False),
    sa.Column("target_id", sa.String(200), nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),
    sa.Column("client", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_tenant_id", "tenant_id", "id"),
)

# Product events recorded locally (no third-party analytics).
product_events = sa.Table(
    "product_events",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tenant_id", sa.String(32), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),
    sa.Index("ix_product_events_tenant_id", "tenant_id", "id"),
)

# The first time each onboarding step happened, per tenant.
onboarding_steps = sa.Table(
    "onboarding_steps",
    metadata,
    sa.Column("tenant_id", sa.String(32), primary_key=True),
    sa.Column("step", sa.String(64), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("detail", JSONDoc, nullable=False),
)
