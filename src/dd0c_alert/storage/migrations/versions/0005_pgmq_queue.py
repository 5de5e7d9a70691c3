"""pgmq, the production ingest queue: the SQL-only install shipped by the ``pgmq``
package (no extension build, so plain Debian PostgreSQL will do) and the queue
itself. Nothing on SQLite, whose queue is the ``ingest_queue`` table.

A database that already has a ``pgmq`` schema (the extension, or an earlier SQL
install) keeps it: the SQL install cannot upgrade one in place. It must be new
enough to carry message headers (pgmq 1.5+), which hold the trace context.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgmq.install import get_embedded_install_sql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

QUEUE = "dd0c_ingest"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    if bind.execute(sa.text("SELECT to_regnamespace('pgmq') IS NULL")).scalar():
        # A multi-statement script full of % signs: straight to the driver's cursor,
        # with no parameters, so nothing takes them for placeholders. Same transaction.
        bind.connection.cursor().execute(get_embedded_install_sql())
    has_headers = bind.execute(
        sa.text(
            "SELECT EXISTS (SELECT 1 FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid"
            " WHERE t.oid = to_regtype('pgmq.message_record') AND a.attname = 'headers')"
        )
    ).scalar()
    if not has_headers:
        raise RuntimeError("the installed pgmq has no message headers: upgrade it to 1.5 or newer")
    bind.execute(sa.text("SELECT pgmq.create(:queue)"), {"queue": QUEUE})
