"""Incidents as the REST API reads and changes them, and the suppression log.
``SqlStore`` delegates here, so ``sql.py`` stays about the worker's hot path; the
silences and inhibition rules are ``rule_queries``.

Every query is scoped by tenant, in its ``WHERE`` and (PostgreSQL) by row-level
security: another tenant's id finds nothing, exactly like an unknown one. Human
actions run in one transaction whose ``UPDATE`` re-checks the status, so an action
and the worker (which also writes incidents) never interleave into a state neither
chose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dd0c_alert.correlation.engine import absorb
from dd0c_alert.correlation.model import IncidentState, IncidentStatus
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import Severity

from . import incident_search
from . import schema as t
from .bulk import insert_ignoring_duplicates
from .correlation_sql import incident_row, incident_state
from .outbox import STATE, write_intents
from .ports import (
    IncidentAction,
    IncidentFilter,
    InvalidTransition,
    Page,
    SuppressionMode,
    Verdict,
)
from .rows import alert_dict, decode_cursor, encode_cursor, iso
from .tenancy import reading, scoped

#: Who acted, until user sessions exist: every REST call is authenticated by an API key.
ACTOR = "api"
#: The notification event each human action causes.
_TOLD = {"ack": "acknowledged", "resolve": "resolved", "reopen": "reopened", "snooze": "snoozed"}
#: Alerts and decisions shown in one incident's detail; ``alert_count`` stays exact.
DETAIL_LIMIT = 1000
#: Merges chain (A into B, B into C); a chain longer than this is cut, not followed forever.
MAX_MERGE_DEPTH = 50

_OPEN, _ACKED, _RESOLVED = IncidentStatus.OPEN, IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED
#: The statuses each action may start from.
ALLOWED: dict[IncidentAction, tuple[IncidentStatus, ...]] = {
    "ack": (_OPEN,),
    "resolve": (_OPEN, _ACKED),
    "snooze": (_OPEN, _ACKED),
    "reopen": (_RESOLVED,),
}


# --------------------------------------------------------------------------- rendering


def incident_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "severity": row.severity,
        "title": row.title,
        "services": list(row.services),
        "alert_count": row.alert_count,
        "firing": row.firing,
        "noise_score": row.noise_score,
        "noise_reasons": list(row.noise_reasons),
        "opened_at": iso(row.first_at),
        "last_at": iso(row.last_at),
        "acknowledged_at": iso(row.acknowledged_at),
        "snoozed_until": iso(row.snoozed_until),
        "resolved_at": iso(row.resolved_at),
        "probable_root": row.probable_root,
        "deploys": [_deploy(d) for d in row.deploys],
        "flapping": bool(row.flapping),
        "paged": row.paged,
        "merged_into": row.merged_into,
    }


def _state(row: Any) -> dict[str, Any]:
    """The incident's state as an intent keeps it: its event, sent later, must tell
    this moment's state even if the incident moved on meanwhile."""
    return {
        STATE: {
            "status": row.status,
            "acknowledged_at": iso(row.acknowledged_at),
            "resolved_at": iso(row.resolved_at),
            "snoozed_until": iso(row.snoozed_until),
        }
    }


def _deploy(stored: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "service", "version", "author", "title", "url", "environment")
    started = datetime.fromisoformat(stored["started_at"])
    return {**{k: stored.get(k, "") for k in keys}, "started_at": iso(started)}


def _decision(row: Any) -> dict[str, Any]:
    return {
        "kind": "decision",
        "at": iso(row.at),
        "incident_id": row.incident_id,
        "decision_id": row.id,
        "alert_id": row.alert_id,
        "outcome": row.outcome,
        "reasons": list(row.reasons),
        "page": row.page,
        "flapping": row.flapping,
        "suppressed_by": row.suppressed_by,
        "would_suppress": row.would_suppress,
        "inhibited_by": row.inhibited_by,
        "replayed_at": iso(row.replayed_at),
    }


def _event(row: Any) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "at": iso(row.at),
        "incident_id": row.incident_id,
        "actor": row.actor,
        "detail": dict(row.detail),
    }


# --------------------------------------------------------------------------- incidents


def list_incidents(
    read: sa.Engine, tenant_id: str, filters: IncidentFilter, limit: int, cursor: str | None
) -> Page:
    """Newest first by id; incidents merged into another are left out (their alerts
    moved to the one that absorbed them)."""
    i, s = t.incidents, t.incident_services
    query = sa.select(i).where(i.c.tenant_id == tenant_id, i.c.merged_into.is_(None))
    for column, value in ((i.c.status, filters.status), (i.c.severity, filters.severity)):
        if value is not None:
            query = query.where(column == value)
    if filters.service is not None:
        query = query.where(
            sa.exists().where(
                s.c.tenant_id == tenant_id,
                s.c.service == filters.service,
                s.c.incident_id == i.c.id,
            )
        )
    if filters.since is not None:
        query = query.where(i.c.first_at >= filters.since)
    if filters.until is not None:
        query = query.where(i.c.first_at < filters.until)
    a = t.alerts
    if filters.source is not None:
        query = query.where(
            sa.exists().where(
                a.c.tenant_id == tenant_id, a.c.incident_id == i.c.id, a.c.source == filters.source
            )
        )
    below = decode_cursor(cursor) if cursor else None
    if below is not None:
        query = query.where(i.c.id < below)
    with reading(read, tenant_id) as conn:
        if filters.q:
            rows = incident_search.search(conn, tenant_id, query, filters.q, limit + 1, below)
        else:
            rows = list(conn.execute(query.order_by(i.c.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[incident_dict(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )


def _absorbed(conn: sa.Connection, tenant_id: str, incident_id: str) -> list[str]:
    """The incident and every incident merged into it, directly or along a chain: their
    decisions and human actions are part of its story."""
    i = t.incidents
    found, frontier = [incident_id], [incident_id]
    for _ in range(MAX_MERGE_DEPTH):
        frontier = [
            merged
            for merged in conn.execute(
                sa.select(i.c.id).where(i.c.tenant_id == tenant_id, i.c.merged_into.in_(frontier))
            ).scalars()
            if merged not in found
        ]
        if not frontier:
            break
        found += frontier
    return found


def get_incident(read: sa.Engine, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
    """The incident with its alerts (in event-time order), timeline and noise score.

    The timeline interleaves the engine's decisions (at the alert's event time) with
    what people did (at the time they did it). A merged incident answers as itself,
    with ``merged_into`` naming the incident that now holds its alerts.
    """
    i, a, d, e = t.incidents, t.alerts, t.decisions, t.incident_events
    with reading(read, tenant_id) as conn:
        row = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == incident_id)
        ).first()
        if row is None:
            return None
        ids = _absorbed(conn, tenant_id, incident_id)
        alerts = conn.execute(
            sa.select(a)
            .where(a.c.tenant_id == tenant_id, a.c.incident_id.in_(ids))
            .order_by(a.c.started_at, a.c.id)
            .limit(DETAIL_LIMIT + 1)
        ).all()
        decisions = conn.execute(
            sa.select(d)
            .where(d.c.tenant_id == tenant_id, d.c.incident_id.in_(ids))
            .order_by(d.c.at, d.c.id)
            .limit(DETAIL_LIMIT + 1)
        ).all()
        events = conn.execute(
            sa.select(e).where(e.c.tenant_id == tenant_id, e.c.incident_id.in_(ids))
        ).all()
    entries = [(x.at, 0, _decision(x)) for x in decisions[:DETAIL_LIMIT]]
    entries += [(x.at, 1, _event(x)) for x in events]
    timeline = [entry for _, _, entry in sorted(entries, key=lambda e: (e[0], e[1]))]
    return {
        **incident_dict(row),
        "alerts": [alert_dict(x) for x in alerts[:DETAIL_LIMIT]],
        "alerts_truncated": len(alerts) > DETAIL_LIMIT,
        "timeline": timeline,
        "timeline_truncated": len(decisions) > DETAIL_LIMIT,
        "noise": {"score": row.noise_score, "reasons": list(row.noise_reasons)},
    }


#: How many alerts a notification reads: the worst and most repeated first.
NOTIFY_ALERTS = 20


def notification_detail(read: sa.Engine, tenant_id: str, incident_id: str) -> dict[str, Any] | None:
    """What a notification shows, at a bounded cost whatever the incident's size: the
    incident, its worst ``NOTIFY_ALERTS`` alerts (by severity, then most repeated, then
    earliest), how many deliveries were folded, and what people did (``timeline``
    holds human actions only). Each severity's alerts are read from the front of
    ``ix_alerts_incident_worst``, worst severity first, until the list is full."""
    i, a, e = t.incidents, t.alerts, t.incident_events
    with scoped(read, tenant_id) as conn:
        row = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == incident_id)
        ).first()
        if row is None:
            return None
        ids = _absorbed(conn, tenant_id, incident_id)
        alerts: list[Any] = []
        for severity in Severity:
            wanted = NOTIFY_ALERTS - len(alerts)
            if not wanted:
                break
            found: list[Any] = []
            for one in ids:  # the incident, and any merged into it whose alerts stayed
                found += conn.execute(
                    sa.select(a)
                    .where(a.c.tenant_id == tenant_id, a.c.incident_id == one)
                    .where(a.c.severity == severity)
                    .order_by(a.c.repeat_count.desc(), a.c.started_at)
                    .limit(wanted)
                ).all()
            found.sort(key=lambda x: (-x.repeat_count, x.started_at))
            alerts += found[:wanted]
        events = conn.execute(
            sa.select(e).where(e.c.tenant_id == tenant_id, e.c.incident_id.in_(ids))
        ).all()
    return {
        **incident_dict(row),
        "alerts": [alert_dict(x) for x in alerts],
        "dedup_count": row.folded,
        "timeline": [_event(x) for x in sorted(events, key=lambda x: x.at)],
    }


def digest(read: sa.Engine, tenant_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    """One tenant's day for the daily digest mail: incidents opened and paged, alerts
    received, the noisiest fingerprints, suggestions waiting for review."""
    i, a, s = t.incidents, t.alerts, t.suggestions
    day_incidents = (i.c.tenant_id == tenant_id) & (i.c.first_at >= start) & (i.c.first_at < end)
    day_alerts = (a.c.tenant_id == tenant_id) & (a.c.started_at >= start) & (a.c.started_at < end)
    fired = sa.func.sum(a.c.repeat_count).label("fired")
    with scoped(read, tenant_id) as conn:
        incidents, pages = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(sa.case((i.c.paged, 1), else_=0)), 0),
            ).where(day_incidents)
        ).one()
        alerts = conn.execute(sa.select(sa.func.count()).where(day_alerts)).scalar()
        noisy = conn.execute(
            sa.select(a.c.fingerprint, sa.func.max(a.c.title).label("title"), fired)
            .where(day_alerts)
            .group_by(a.c.fingerprint)
            .order_by(fired.desc())
            .limit(5)
        ).all()
        waiting = conn.execute(
            sa.select(sa.func.count()).where(s.c.tenant_id == tenant_id, s.c.status == "open")
        ).scalar()
    return {
        "incidents": int(incidents),
        "pages": int(pages),
        "alerts": int(alerts or 0),
        "top_noisy": [(r.title, r.fingerprint, int(r.fired or 0)) for r in noisy],
        "open_suggestions": int(waiting or 0),
    }


def _record(
    conn: sa.Connection,
    tenant_id: str,
    incident_id: str,
    kind: str,
    detail: dict[str, Any],
    at: datetime,
    actor: str = ACTOR,
) -> None:
    conn.execute(
        t.incident_events.insert().values(
            id=new_id(),
            tenant_id=tenant_id,
            incident_id=incident_id,
            kind=kind,
            actor=actor,
            detail=detail,
            at=at,
        )
    )


#: The tenant's worker lock (``SqlStore.transaction``): people's changes to incidents
#: wait for the running batch, which loaded them before, to commit.
_CLAIM_TENANT = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended('dd0c:tenant:' || :tenant_id, 0))"
)


def transition(
    write: sa.Engine,
    tenant_id: str,
    incident_id: str,
    action: IncidentAction,
    snooze_minutes: int = 60,
    actor: str = ACTOR,
) -> dict[str, Any] | None:
    """Apply a human action and record it on the timeline, by ``actor``; the updated
    incident, or None when the tenant has no such incident. Raises
    ``InvalidTransition`` when the incident's status does not allow the action (or it
    was merged away). A paged incident's notifications are told in the same
    transaction (the outbox), so its Slack message shows the new state."""
    i = t.incidents
    now = datetime.now(UTC)
    values: dict[str, Any] = {"updated_at": now}
    detail: dict[str, Any] = {}
    if action == "ack":
        values |= {
            "status": _ACKED,
            "acknowledged_at": sa.func.coalesce(
                i.c.acknowledged_at, sa.literal(now, t.UTCDateTime())
            ),
        }
    elif action == "resolve":  # ends a snooze: a recurrence must not read as snoozed
        values |= {"status": _RESOLVED, "resolved_at": now, "snoozed_until": None}
    elif action == "reopen":  # the first ack still counts
        values |= {"status": _OPEN, "resolved_at": None, "snoozed_until": None}
    else:
        until = now + timedelta(minutes=snooze_minutes)
        values["snoozed_until"] = until
        detail = {"minutes": snooze_minutes, "until": iso(until)}
    mine = (i.c.tenant_id == tenant_id) & (i.c.id == incident_id)
    with scoped(write, tenant_id) as conn:
        if conn.dialect.name == "postgresql":
            # After the tenant's running worker batch, as a merge: that batch loaded the
            # incident before this action and writes its status back, so an ack made
            # meanwhile was lost (status open again, though acknowledged_at was set).
            # SQLite's single writer orders the two already.
            conn.execute(_CLAIM_TENANT, {"tenant_id": tenant_id})
        changed = conn.execute(
            i.update()
            .where(mine, i.c.merged_into.is_(None), i.c.status.in_(ALLOWED[action]))
            .values(values)
        ).rowcount
        if not changed:
            found = conn.execute(sa.select(i.c.status, i.c.merged_into).where(mine)).first()
            if found is None:
                return None
            if found.merged_into is not None:
                raise InvalidTransition(
                    f"incident {incident_id} was merged into {found.merged_into}: act on that one"
                )
            allowed = " or ".join(ALLOWED[action])
            raise InvalidTransition(
                f"cannot {action} an incident that is {found.status} (only when {allowed})"
            )
        _record(conn, tenant_id, incident_id, action, detail, now, actor)
        row = conn.execute(sa.select(i).where(mine)).one()
        if row.paged:
            told = {"actor": actor, **detail, **_state(row)}
            write_intents(conn, tenant_id, [(incident_id, _TOLD[action], told)])
    return incident_dict(row)


def _live_id(conn: sa.Connection, tenant_id: str, incident_id: str) -> str | None:
    """Follow ``merged_into`` to the incident that holds the alerts now."""
    i = t.incidents
    current: str | None = incident_id
    for _ in range(MAX_MERGE_DEPTH):
        merged_into = conn.execute(
            sa.select(i.c.merged_into).where(i.c.tenant_id == tenant_id, i.c.id == current)
        ).first()
        if merged_into is None:
            return None
        if merged_into[0] is None:
            return current
        current = merged_into[0]
    return current


def add_feedback(
    write: sa.Engine, tenant_id: str, incident_id: str, verdict: Verdict, actor: str = ACTOR
) -> dict[str, Any] | None:
    """Record a verdict on the incident that holds the alerts now (following merges).

    An incident keeps one verdict, the latest: the noise score counts verdicts per
    incident, and a second click must not count twice.
    """
    f = t.feedback
    now = datetime.now(UTC)
    with scoped(write, tenant_id) as conn:
        live = _live_id(conn, tenant_id, incident_id)
        if live is None:
            return None
        conn.execute(f.delete().where(f.c.tenant_id == tenant_id, f.c.incident_id == live))
        feedback_id = new_id()
        conn.execute(
            f.insert().values(
                id=feedback_id,
                tenant_id=tenant_id,
                incident_id=live,
                verdict=verdict,
                created_at=now,
            )
        )
        _record(conn, tenant_id, live, "feedback", {"verdict": verdict}, now, actor)
    return {"id": feedback_id, "incident_id": live, "verdict": verdict, "created_at": iso(now)}


def add_note(
    write: sa.Engine, tenant_id: str, incident_id: str, text: str, actor: str = ACTOR
) -> dict[str, Any] | None:
    """A note on the incident's timeline (the live one, following merges)."""
    now = datetime.now(UTC)
    with scoped(write, tenant_id) as conn:
        live = _live_id(conn, tenant_id, incident_id)
        if live is None:
            return None
        _record(conn, tenant_id, live, "note", {"text": text}, now, actor)
    return {
        "kind": "note",
        "at": iso(now),
        "incident_id": live,
        "actor": actor,
        "detail": {"text": text},
    }


def merge(
    write: sa.Engine, tenant_id: str, incident_id: str, into: str, actor: str = ACTOR
) -> dict[str, Any] | None:
    """Merge one incident into another, as the engine merges a bridged pair: the
    alerts move, ``merged_into`` points on. Recorded on both timelines and as feedback
    (verdict ``merged``) the suggestion engine reads; both incidents' destinations are
    told (outbox, ``_merge_intents``) in the same transaction. On PostgreSQL the
    tenant's worker lock is taken first, so no batch writes back a stale copy of either
    incident."""
    if incident_id == into:
        raise InvalidTransition("an incident cannot be merged into itself")
    i = t.incidents
    now = datetime.now(UTC)
    with scoped(write, tenant_id) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_CLAIM_TENANT, {"tenant_id": tenant_id})
        rows = {
            row.id: row
            for row in conn.execute(
                sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id.in_((incident_id, into)))
            )
        }
        if len(rows) < 2:
            return None
        for row in rows.values():
            if row.merged_into is not None:
                raise InvalidTransition(
                    f"incident {row.id} was merged into {row.merged_into}: use that one"
                )
        target, merged = incident_state(rows[into]), incident_state(rows[incident_id])
        # What each side was, for the suggestion engine (``suggestion_queries``).
        sides = {"merged_services": sorted(merged.services), "services": sorted(target.services)}
        absorb(target, merged)
        merged.resolved_at = now
        for state in (target, merged):
            values = {
                k: v for k, v in incident_row(state, now).items() if k not in ("id", "tenant_id")
            }
            conn.execute(
                i.update().where(i.c.tenant_id == tenant_id, i.c.id == state.id).values(values)
            )
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.tenant_id == tenant_id, t.alerts.c.incident_id == incident_id)
            .values(incident_id=into)
        )
        insert_ignoring_duplicates(
            conn,
            t.incident_services,
            [{"tenant_id": tenant_id, "service": x, "incident_id": into} for x in target.services],
        )
        incident_search.merged(conn, tenant_id, target, incident_id)
        _record(conn, tenant_id, incident_id, "merge", {"into": into}, now, actor)
        _record(conn, tenant_id, into, "merge", {"merged": incident_id, **sides}, now, actor)
        conn.execute(
            t.feedback.insert().values(
                id=new_id(), tenant_id=tenant_id, incident_id=into, verdict="merged", created_at=now
            )
        )
        row = conn.execute(sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == into)).one()
        write_intents(conn, tenant_id, _merge_intents(conn, tenant_id, rows, row, actor))
    return incident_dict(row)


def _merge_intents(
    conn: sa.Connection, tenant_id: str, before: dict[str, Any], target: Any, actor: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """What a merge tells: the merged-away incident that paged, that it was merged
    (its message says so); the one that took its alerts, that it grew (``updated``),
    or, when only the merged one had paged, that it now stands for a page
    (``opened``): its message is where the merged one's story goes on."""
    i = t.incidents
    merged_id = next(x for x in before if x != target.id)
    told: list[tuple[str, str, dict[str, Any]]] = []
    if before[merged_id].paged:
        merged = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == merged_id)
        ).one()
        told.append((merged_id, "merged", {"into": target.id, "actor": actor, **_state(merged)}))
    if target.paged:
        event = "updated" if before[target.id].paged else "opened"
        told.append((target.id, event, {"actor": actor, **_state(target)}))
    return told


def split(
    write: sa.Engine, tenant_id: str, incident_id: str, alert_ids: list[str], actor: str = ACTOR
) -> dict[str, Any] | None:
    """Move some of an incident's alerts into a new incident: what the engine grouped
    that a person says does not belong together. Both incidents are recounted from
    their alerts; both timelines say so; a ``split`` feedback row records the verdict
    for the suggestion engine. None when the tenant has no such incident; raises
    ``InvalidTransition`` when the alerts are not all the incident's, or are all of it."""
    i, a = t.incidents, t.alerts
    now = datetime.now(UTC)
    wanted = set(alert_ids)
    with scoped(write, tenant_id) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(_CLAIM_TENANT, {"tenant_id": tenant_id})
        row = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == incident_id)
        ).first()
        if row is None:
            return None
        if row.merged_into is not None:
            raise InvalidTransition(f"incident {incident_id} was merged into {row.merged_into}")
        alerts = conn.execute(
            sa.select(a).where(a.c.tenant_id == tenant_id, a.c.incident_id == incident_id)
        ).all()
        moving = [x for x in alerts if x.id in wanted]
        staying = [x for x in alerts if x.id not in wanted]
        if len(moving) != len(wanted):
            raise InvalidTransition("every alert to split out must belong to this incident")
        if not staying:
            raise InvalidTransition("a split must leave at least one alert in the incident")
        old = incident_state(row)
        new = incident_state(row)
        new.id, new.deploys, new.merged_into = new_id(), [], None
        new.noise_score, new.noise_reasons = 0, []
        for state, members in ((old, staying), (new, moving)):
            _recount(state, members, now)
        # Split out of an incident that paged, a still firing part pages too: its team
        # must hear of it as of any new incident (escalation included), not find it.
        new.paged = row.paged and new.status is not IncidentStatus.RESOLVED
        # The repeats of the alerts that move go with them; the rest stay.
        new.folded = min(old.folded, sum(max(0, x.repeat_count - 1) for x in moving))
        old.folded -= new.folded
        for state in (old, new):
            values = incident_row(state, now)
            if state is new:
                conn.execute(i.insert().values(values))
            else:
                del values["id"], values["tenant_id"]
                conn.execute(
                    i.update()
                    .where(i.c.tenant_id == tenant_id, i.c.id == incident_id)
                    .values(values)
                )
        conn.execute(
            a.update()
            .where(a.c.tenant_id == tenant_id, a.c.id.in_([x.id for x in moving]))
            .values(incident_id=new.id)
        )
        insert_ignoring_duplicates(
            conn,
            t.incident_services,
            [{"tenant_id": tenant_id, "service": x, "incident_id": new.id} for x in new.services],
        )
        incident_search.write(
            conn,
            tenant_id,
            {
                state.id: incident_search.rebuilt(
                    state.title, state.services, [x.labels for x in members]
                )
                for state, members in ((old, staying), (new, moving))
            },
        )
        moved = {"alert_ids": sorted(wanted)}
        sides = {"moved_services": sorted(new.services), "kept_services": sorted(old.services)}
        _record(
            conn, tenant_id, incident_id, "split", {**moved, "into": new.id, **sides}, now, actor
        )
        _record(conn, tenant_id, new.id, "split", {**moved, "from": incident_id}, now, actor)
        conn.execute(
            t.feedback.insert().values(
                id=new_id(),
                tenant_id=tenant_id,
                incident_id=incident_id,
                verdict="split",
                created_at=now,
            )
        )
        created = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == new.id)
        ).one()
        write_intents(conn, tenant_id, _split_intents(conn, tenant_id, row, created, actor))
        return incident_dict(created)


def _split_intents(
    conn: sa.Connection, tenant_id: str, before: Any, created: Any, actor: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """What a split tells, through the outbox as any decision: the incident that paged,
    that it shrank (``updated``); the one split out of it, when it pages, that it was
    opened, so it is announced (Slack, mail, webhooks) where a new incident goes."""
    told: list[tuple[str, str, dict[str, Any]]] = []
    if before.paged:
        i = t.incidents
        kept = conn.execute(
            sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == before.id)
        ).one()
        told.append((before.id, "updated", {"actor": actor, **_state(kept)}))
    if created.paged:
        opened = {"actor": actor, "split_from": before.id, **_state(created)}
        told.append((created.id, "opened", opened))
    return told


def _recount(state: IncidentState, alerts: list[Any], now: datetime) -> None:
    """An incident's counts, services, times and severity from its alerts."""
    order = list(Severity)
    state.alert_count = len(alerts)
    state.firing = sum(1 for x in alerts if x.status == "firing")
    state.services = {x.service for x in alerts if x.service} or state.services
    state.fingerprints = {x.fingerprint for x in alerts}
    state.first_at = min(x.started_at for x in alerts)
    state.last_at = max(x.started_at for x in alerts)
    state.severity = min((Severity(x.severity) for x in alerts), key=order.index)
    state.title = min(alerts, key=lambda x: x.started_at).title
    if state.firing:
        state.status = (
            IncidentStatus.ACKNOWLEDGED
            if state.status is IncidentStatus.ACKNOWLEDGED
            else IncidentStatus.OPEN
        )
        state.resolved_at = None
    else:
        state.status, state.resolved_at = IncidentStatus.RESOLVED, state.resolved_at or now


def alert_decision(read: sa.Engine, tenant_id: str, alert_id: str) -> dict[str, Any] | None:
    """The alert's latest decision by event time (its resolve after its placement)."""
    d = t.decisions
    with scoped(read, tenant_id) as conn:
        row = conn.execute(
            sa.select(d)
            .where(d.c.tenant_id == tenant_id, d.c.alert_id == alert_id)
            .order_by(d.c.at.desc(), d.c.id.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    entry = _decision(row)
    del entry["kind"]
    return entry


# --------------------------------------------------------------------------- suppression log

_SUPPRESSION = t.decisions.c.suppressed_by.is_not(None) | t.decisions.c.would_suppress.is_not(None)


def _suppression(row: Any) -> dict[str, Any]:
    entry = _decision(row)
    del entry["kind"]
    return {
        **entry,
        "mode": "suppressed" if row.suppressed_by is not None else "would_suppress",
        "rule_id": row.suppressed_by or row.would_suppress,
        "title": row.title,
        "service": row.service,
        "severity": row.severity,
    }


def _suppressions(tenant_id: str) -> sa.Select[Any]:
    d, a = t.decisions, t.alerts
    return (
        sa.select(d, a.c.title, a.c.service, a.c.severity)
        .select_from(d.outerjoin(a, (a.c.tenant_id == d.c.tenant_id) & (a.c.id == d.c.alert_id)))
        .where(d.c.tenant_id == tenant_id, _SUPPRESSION)
    )


def list_suppressions(
    read: sa.Engine,
    tenant_id: str,
    mode: SuppressionMode | None,
    limit: int,
    cursor: str | None,
) -> Page:
    """Decisions a rule suppressed (strict mode) or would have (audit mode), newest first."""
    d = t.decisions
    query = _suppressions(tenant_id)
    if mode == "suppressed":
        query = query.where(d.c.suppressed_by.is_not(None))
    elif mode == "would_suppress":
        query = query.where(d.c.suppressed_by.is_(None))
    if cursor:
        query = query.where(d.c.id < decode_cursor(cursor))
    with scoped(read, tenant_id) as conn:
        rows = conn.execute(query.order_by(d.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[_suppression(row) for row in rows],
        next_cursor=encode_cursor(rows[-1].id) if more and rows else None,
    )


def mark_replayed(write: sa.Engine, tenant_id: str, decision_id: str) -> dict[str, Any] | None:
    """Record that a suppressed alert is to be delivered after all; idempotent.

    Records ``replayed_at``, a ``replay`` entry on the incident's timeline and an
    ``opened`` notification intent, which the notifier delivers by the tenant's routes.
    Raises ``InvalidTransition`` for a decision that was not suppressed (audit mode
    delivered it already).
    """
    d = t.decisions
    now = datetime.now(UTC)
    mine = (d.c.tenant_id == tenant_id) & (d.c.id == decision_id)
    with scoped(write, tenant_id) as conn:
        row = conn.execute(sa.select(d).where(mine)).first()
        if row is None or (row.suppressed_by is None and row.would_suppress is None):
            return None
        if row.suppressed_by is None:
            raise InvalidTransition(
                f"decision {decision_id} was delivered (audit mode only logged "
                f"rule {row.would_suppress}): nothing to replay"
            )
        if row.replayed_at is None:
            conn.execute(d.update().where(mine).values(replayed_at=now))
            detail = {"decision_id": decision_id, "alert_id": row.alert_id}
            _record(conn, tenant_id, row.incident_id, "replay", detail, now)
            # Delivered after all: the notifier pages as for a new incident.
            write_intents(conn, tenant_id, [(row.incident_id, "opened", {"replay": detail})])
        replayed = conn.execute(_suppressions(tenant_id).where(d.c.id == decision_id)).one()
    return _suppression(replayed)
