"""Leaves room on the ingest queue's pages, so that a claim's new row version lands
on the page of the old one and PostgreSQL logs only the bytes that changed. Nothing
on SQLite.

pgmq claims a message by updating its row (visibility time, read count). PostgreSQL
logs only the changed middle of a row when the new version stays on the old one's
page; on a full page (the default fill factor, 100) the new version goes elsewhere
and the WAL carries the whole row, message included: a second copy of every webhook
body, about a fifth of the WAL a production worker makes under single-alert load.
With the queue's pages half filled by inserts, the claim's version fits beside the old
one: its WAL record went from ~1.8 KB to 90 bytes (``bench/README.md``). Pages already
written keep their layout until their rows are consumed.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TABLE = "pgmq.q_dd0c_ingest"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"ALTER TABLE {_TABLE} SET (fillfactor = 50)"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(f"ALTER TABLE {_TABLE} RESET (fillfactor)"))
