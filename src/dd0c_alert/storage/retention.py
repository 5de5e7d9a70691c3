"""Retention: a tenant's records older than a cutoff are deleted in small batches.

Batches of a few thousand rows, each its own short transaction, keep the worker and
webhook admission from waiting behind one long delete (on SQLite they share the
write lock). What is still going on is kept whatever its age: firing alerts, and the
incidents that still have alerts.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from . import schema as t
from .tenancy import scoped

BATCH = 5000


def purge_tenant(
    engine: sa.Engine, tenant_id: str, cutoff: datetime, batch: int = BATCH
) -> dict[str, int]:
    """Delete the tenant's records older than ``cutoff``; how many of each kind went."""
    a, d, i, dl = t.alerts, t.decisions, t.incidents, t.dead_letters
    expired: dict[str, tuple[sa.Table, sa.ColumnElement[bool]]] = {
        "alerts": (a, (a.c.last_seen_at < cutoff) & (a.c.status != "firing")),
        # A kept alert keeps its explanations, however old the event.
        "decisions": (d, (d.c.at < cutoff) & ~sa.exists().where(a.c.id == d.c.alert_id)),
        "deploys": (t.deploys, t.deploys.c.started_at < cutoff),
        "dead_letters": (dl, dl.c.received_at < cutoff.timestamp()),
    }
    done = {
        kind: _in_batches(engine, tenant_id, table, condition, batch)
        for kind, (table, condition) in expired.items()
    }
    alive = sa.exists().where(a.c.tenant_id == tenant_id, a.c.incident_id == i.c.id)
    gone: list[str] = []
    while True:
        with scoped(engine, tenant_id) as conn:
            ids = list(
                conn.execute(
                    sa.select(i.c.id)
                    .where(i.c.tenant_id == tenant_id, i.c.last_at < cutoff, ~alive)
                    .limit(batch)
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
        if len(ids) < batch:
            break
    done["incidents"] = len(gone)
    return done


def _in_batches(
    engine: sa.Engine,
    tenant_id: str,
    table: sa.Table,
    condition: sa.ColumnElement[bool],
    batch: int,
) -> int:
    total = 0
    while True:
        with scoped(engine, tenant_id) as conn:
            ids = (
                sa.select(table.c.id)
                .where(table.c.tenant_id == tenant_id, condition)
                .limit(batch)
                .scalar_subquery()
            )
            deleted = conn.execute(table.delete().where(table.c.id.in_(ids))).rowcount
        total += deleted
        if deleted < batch:
            return total
