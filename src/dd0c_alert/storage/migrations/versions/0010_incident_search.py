"""Incident search documents (``storage.incident_search``), indexed by trigrams, and
filled for the incidents already stored; the merges and splits a suggestion cites;
daily rollups per dimension, filled from the hourly ones, and an index for one
service's hourly rollups (built CONCURRENTLY on PostgreSQL, outside the transaction).

SQLite: an external-content FTS5 table with the ``trigram`` tokenizer, kept in step by
triggers. PostgreSQL: a ``pg_trgm`` GIN index (pg_trgm is a trusted extension, which
the database owner may create; where it is not installed, the index is left out and
search scans) and the row-level security policy of every tenant table. The index is
built after the fill, on a table no running process reads yet, so it blocks nothing.

Incidents an older worker opens while this release rolls out get their document the
next time a batch touches them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 10:00:00.000000
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from dd0c_alert.storage import incident_search, schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TENANT = "current_setting('app.tenant_id', true)"
_PAGE = 1000

SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE incident_search_fts USING fts5("
    "text, content='incident_search', content_rowid='seq', tokenize='trigram')",
    "CREATE TRIGGER incident_search_ai AFTER INSERT ON incident_search BEGIN"
    " INSERT INTO incident_search_fts(rowid, text) VALUES (new.seq, new.text); END",
    "CREATE TRIGGER incident_search_ad AFTER DELETE ON incident_search BEGIN"
    " INSERT INTO incident_search_fts(incident_search_fts, rowid, text)"
    " VALUES ('delete', old.seq, old.text); END",
    "CREATE TRIGGER incident_search_au AFTER UPDATE ON incident_search BEGIN"
    " INSERT INTO incident_search_fts(incident_search_fts, rowid, text)"
    " VALUES ('delete', old.seq, old.text);"
    " INSERT INTO incident_search_fts(rowid, text) VALUES (new.seq, new.text); END",
)


JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIME = schema.UTCDateTime(timezone=True)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("suggestions") as batch:
        batch.add_column(sa.Column("cites", JSON, nullable=False, server_default="[]"))
    op.create_table(
        "incident_search",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.UniqueConstraint("tenant_id", "incident_id", name="ux_incident_search_incident"),
    )
    if not postgres:
        for statement in SQLITE_INDEX:
            op.execute(statement)
    _fill(bind)
    _daily_rollups(postgres)
    if postgres:
        _postgres_only(bind)
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_rollups_hourly_service",
            "rollups_hourly",
            ["tenant_id", "service", "hour"],
            postgresql_concurrently=True,
        )


def _daily_rollups(postgres: bool) -> None:
    op.create_table(
        "rollups_daily",
        sa.Column("tenant_id", sa.String(length=32), nullable=False),
        sa.Column("day", TIME, nullable=False),
        sa.Column("dimension", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("alerts", sa.Integer(), nullable=False),
        sa.Column("incidents_opened", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "day", "dimension", "value"),
    )
    day = (
        "date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        if postgres
        else "substr(hour, 1, 10) || ' 00:00:00.000000'"
    )
    dimensions = (("all", "''"), ("source", "source"), ("service", "service"))
    for dimension, value in (*dimensions, ("severity", "severity")):
        op.execute(  # every interpolated piece is a constant of this function
            "INSERT INTO rollups_daily (tenant_id, day, dimension, value, alerts,"  # noqa: S608
            " incidents_opened, pages)"
            f" SELECT tenant_id, {day}, '{dimension}', {value}, sum(alerts),"
            " sum(incidents_opened), sum(pages) FROM rollups_hourly"
            f" GROUP BY tenant_id, {day}" + ("" if dimension == "all" else f", {value}")
        )


def _postgres_only(bind: sa.Connection) -> None:
    for table in ("incident_search", "rollups_daily"):
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table}"
            f" USING (tenant_id = {_TENANT}) WITH CHECK (tenant_id = {_TENANT})"
        )
    available = bind.execute(
        sa.text("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).scalar()
    if not available:
        logging.getLogger(__name__).warning(
            "pg_trgm is not installed: incident search works without its index, slower"
        )
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_incident_search_trigrams",
        "incident_search",
        ["text"],
        postgresql_using="gin",
        postgresql_ops={"text": "gin_trgm_ops"},
    )


def _fill(bind: sa.Connection) -> None:
    """A document for every live incident, from its title, services and alerts, a page
    of incidents at a time (each page's alerts found by ``ix_alerts_tenant_incident``)."""
    i, a = schema.incidents, schema.alerts
    after: tuple[str, str] = ("", "")
    while True:
        page = bind.execute(
            sa.select(i.c.tenant_id, i.c.id, i.c.title, i.c.services)
            .where(i.c.merged_into.is_(None), sa.tuple_(i.c.tenant_id, i.c.id) > after)
            .order_by(i.c.tenant_id, i.c.id)
            .limit(_PAGE)
        ).all()
        if not page:
            return
        by_tenant: dict[str, list[Any]] = defaultdict(list)
        for row in page:
            by_tenant[row.tenant_id].append(row)
        for tenant_id, rows in by_tenant.items():
            labels: dict[str, list[Mapping[str, str]]] = defaultdict(list)
            for alert in bind.execute(
                sa.select(a.c.incident_id, a.c.labels)
                .where(a.c.tenant_id == tenant_id, a.c.incident_id.in_([r.id for r in rows]))
                .order_by(a.c.started_at, a.c.id)
            ):
                labels[alert.incident_id].append(alert.labels)
            documents = {
                row.id: incident_search.rebuilt(row.title, row.services, labels[row.id])
                for row in rows
            }
            incident_search.write(bind, tenant_id, documents)
        after = (page[-1].tenant_id, page[-1].id)
