"""The inbox of SQLite's worker: ``processed_events``, the events a worker transaction
stored, now that the embedded ingest queue has a file of its own.

Admission and the worker shared one SQLite write lock, so every webhook waited for
the worker's batch transactions (p99 about 100 ms in the race against Alertmanager).
With the queue in its own file, the worker can no longer delete its events in the
transaction that stores them; it records them here instead, in that transaction, and
acknowledges the queue after the commit. PostgreSQL keeps pgmq in the same database
and needs no inbox. The queue file takes over the queued events, idempotency keys and
usage counters of the database's own tables when it is first opened.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(32), primary_key=True),
        sa.Column("processed_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_table("processed_events")
