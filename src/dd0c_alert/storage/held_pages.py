"""Pages held back by quiet hours (``held_pages``), the queries behind the outbox's.

Planning records the fact as it happens, in the transaction that deletes the intent
whose page was held (``hold``), so the release depends on nothing the tenant may
change meanwhile (its routes' quiet hours, names, matchers). The release pass reads a
tenant's rows (``waiting``: one primary-key range read, which finds nothing for the
many tenants without held pages) and takes the rows it settles (``take``). A row
lives only while its incident is open, unacknowledged and unannounced, so the table
stays small without a retention job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from . import schema as t
from .bulk import insert_ignoring_duplicates


@dataclass(frozen=True, slots=True)
class HeldPage:
    incident_id: str
    #: The event whose page was held: ``opened``, or ``reopened`` never announced.
    event: str
    held_at: datetime
    #: An intent of the incident waits to be planned: it is decided on first.
    pending: bool


def hold(
    conn: sa.Connection, tenant_id: str, pages: Sequence[tuple[str, str]], at: datetime
) -> None:
    """Record ``(incident_id, event)`` pages as held at ``at``; an incident held
    already keeps its first row (its page has waited since then)."""
    rows = [
        {"tenant_id": tenant_id, "incident_id": incident_id, "event": event, "held_at": at}
        for incident_id, event in pages
    ]
    if rows:
        insert_ignoring_duplicates(conn, t.held_pages, rows)


def waiting(conn: sa.Connection, tenant_id: str) -> list[HeldPage]:
    """The tenant's held pages, oldest first."""
    h, n = t.held_pages, t.notification_intents
    pending = sa.exists().where(n.c.tenant_id == tenant_id, n.c.incident_id == h.c.incident_id)
    rows = conn.execute(
        sa.select(h.c.incident_id, h.c.event, h.c.held_at, pending.label("pending"))
        .where(h.c.tenant_id == tenant_id)
        .order_by(h.c.held_at, h.c.incident_id)
    ).all()
    return [HeldPage(r.incident_id, r.event, r.held_at, bool(r.pending)) for r in rows]


def take(conn: sa.Connection, tenant_id: str, incident_ids: Sequence[str]) -> set[str]:
    """Delete the rows of these incidents; the ids whose row this call deleted (a
    notifier running beside this one may have taken some first)."""
    if not incident_ids:
        return set()
    h = t.held_pages
    return set(
        conn.execute(
            h.delete()
            .where(h.c.tenant_id == tenant_id, h.c.incident_id.in_(sorted(set(incident_ids))))
            .returning(h.c.incident_id)
        ).scalars()
    )
