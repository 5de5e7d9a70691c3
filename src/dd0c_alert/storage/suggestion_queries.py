"""SQL for the features that read a tenant's history: suggestions (read the history,
store what the pure core proposed, turn an accepted one into a rule) and the what-if
replay (read stored alerts and what actually happened to them; it writes nothing).

Every statement is scoped by tenant.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dd0c_alert.correlation.model import Matcher, Silence, TenantSettings
from dd0c_alert.correlation.rules import format_matchers
from dd0c_alert.correlation.suggestions import (
    HISTORY,
    SILENCE_HISTORY,
    AlertOccurrence,
    Dependency,
    DependencyRemoval,
    DeployOccurrence,
    Feedback,
    History,
    Regrouping,
    Suggestion,
    accept_note,
    rule_for,
)
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import Severity

from . import schema as t
from .alert_records import record as alert_record
from .bulk import insert_ignoring_duplicates
from .correlation_sql import deploy_ref
from .ports import ActualDecision, Page, ReplaySource, SuggestionVerdict
from .rule_queries import silence_columns

#: Bounds the job's memory on a very busy tenant: the newest alerts are kept.
MAX_HISTORY_ALERTS = 200_000
#: The newest merges and splits read, likewise.
MAX_REGROUPINGS = 10_000
_CHUNK = 500
OPEN, ACCEPTED, DISMISSED, EXPIRED = "open", "accepted", "dismissed", "expired"


# --------------------------------------------------------------------------- history


def load_history(conn: sa.Connection, tenant_id: str, now: datetime) -> History:
    a, i, f, d = t.alerts, t.incidents, t.feedback, t.deploys
    since = now - SILENCE_HISTORY
    acknowledged = i.c.acknowledged_at.is_not(None) | (i.c.status == "acknowledged")
    rows = conn.execute(
        sa.select(
            a.c.fingerprint,
            a.c.title,
            a.c.service,
            a.c.severity,
            a.c.started_at,
            a.c.ended_at,
            a.c.incident_id,
            sa.func.coalesce(acknowledged, False).label("acknowledged"),
        )
        .select_from(a.outerjoin(i, (i.c.id == a.c.incident_id) & (i.c.tenant_id == a.c.tenant_id)))
        .where(a.c.tenant_id == tenant_id, a.c.started_at >= since, a.c.started_at <= now)
        .order_by(a.c.started_at.desc(), a.c.id.desc())
        .limit(MAX_HISTORY_ALERTS)
    )
    alerts = _occurrences(rows)
    deploys = conn.execute(
        sa.select(d.c.service, d.c.started_at).where(
            d.c.tenant_id == tenant_id, d.c.started_at >= now - HISTORY, d.c.started_at <= now
        )
    ).all()
    verdicts = conn.execute(
        sa.select(f.c.incident_id, f.c.verdict, sa.func.count())
        .where(f.c.tenant_id == tenant_id, f.c.created_at >= since)
        .group_by(f.c.incident_id, f.c.verdict)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for incident_id, verdict, count in verdicts:
        counts.setdefault(incident_id, {})[verdict] = count
    return History(
        regroupings=_regroupings(conn, tenant_id, since, now),
        now=now,
        alerts=alerts,
        deploys=tuple(DeployOccurrence(row.service, row.started_at) for row in deploys),
        feedback={
            incident_id: Feedback(noise=c.get("noise", 0), useful=c.get("useful", 0))
            for incident_id, c in counts.items()
        },
    )


def _occurrences(rows: Iterable[sa.Row[Any]]) -> tuple[AlertOccurrence, ...]:
    """The alerts as the pure core reads them, built as the rows stream in (not all
    rows held first). Noisy fingerprints, titles, services and incident ids repeat
    across a history: each distinct string is kept once, where SQLite hands out a new
    copy per row. At 200,000 alerts the pass's peak Python memory went from 161 to
    115 MB."""
    seen: dict[str, str] = {}
    one = seen.setdefault
    return tuple(
        AlertOccurrence(
            fingerprint=one(row.fingerprint, row.fingerprint),
            title=one(row.title, row.title),
            service=one(row.service, row.service),
            severity=Severity(row.severity),
            started_at=row.started_at,
            ended_at=row.ended_at,
            incident_id=one(row.incident_id, row.incident_id) if row.incident_id else "",
            acknowledged=bool(row.acknowledged),
        )
        for row in rows
    )


def _regroupings(
    conn: sa.Connection, tenant_id: str, since: datetime, now: datetime
) -> tuple[Regrouping, ...]:
    """Merges and splits people made, from the timeline entries of the incident merged
    into resp. split from (``incident_queries.merge``/``split``). Entries written before
    they recorded each side's services are left out."""
    e = t.incident_events
    rows = conn.execute(
        sa.select(e.c.incident_id, e.c.kind, e.c.detail, e.c.at)
        .where(
            e.c.tenant_id == tenant_id,
            e.c.kind.in_(("merge", "split")),
            e.c.at >= since,
            e.c.at <= now,
        )
        .order_by(e.c.at.desc(), e.c.id.desc())
        .limit(MAX_REGROUPINGS)
    ).all()
    found: list[Regrouping] = []
    for row in rows:
        detail = row.detail
        if row.kind == "merge" and "merged_services" in detail:
            found.append(
                Regrouping(
                    kind="merge",
                    at=row.at,
                    incident_id=str(detail["merged"]),
                    other_id=row.incident_id,
                    services=frozenset(detail["merged_services"]),
                    other_services=frozenset(detail["services"]),
                )
            )
        elif row.kind == "split" and "moved_services" in detail:
            found.append(
                Regrouping(
                    kind="split",
                    at=row.at,
                    incident_id=row.incident_id,
                    other_id=str(detail["into"]),
                    services=frozenset(detail["moved_services"]),
                    other_services=frozenset(detail["kept_services"]),
                )
            )
    return tuple(found)


# --------------------------------------------------------------------------- suggestions


def save_suggestions(
    conn: sa.Connection, tenant_id: str, found: Sequence[Suggestion], now: datetime
) -> None:
    """Insert new suggestions; refresh (and reopen) open and expired ones; leave
    accepted and dismissed ones alone, since a person decided those. Open ones the
    history no longer supports expire."""
    s = t.suggestions
    existing = {
        (row.kind, row.key): row
        for row in conn.execute(
            sa.select(s.c.id, s.c.kind, s.c.key, s.c.status).where(s.c.tenant_id == tenant_id)
        )
    }
    fresh: list[dict[str, Any]] = []
    refreshed: list[dict[str, Any]] = []
    for item in found:
        row = existing.get((item.kind, item.key))
        content = {
            "title": item.title,
            "evidence": item.evidence,
            "proposal": item.proposal,
            "cites": list(item.cites),
        }
        if row is None:
            fresh.append(
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "kind": item.kind,
                    "key": item.key,
                    "status": OPEN,
                    "created_at": now,
                    "decided_at": None,
                    **content,
                }
            )
        elif row.status in (OPEN, EXPIRED):
            refreshed.append({"_id": row.id, **content})
    insert_ignoring_duplicates(conn, s, fresh)
    # Conditional on the status, so a person's concurrent accept or dismiss wins.
    # Spelled without IN: an expanding IN cannot be part of an executemany.
    undecided = (s.c.status == OPEN) | (s.c.status == EXPIRED)
    if refreshed:
        conn.execute(
            s.update()
            .where(s.c.tenant_id == tenant_id, s.c.id == sa.bindparam("_id"), undecided)
            .values(
                title=sa.bindparam("title"),
                evidence=sa.bindparam("evidence"),
                proposal=sa.bindparam("proposal"),
                cites=sa.bindparam("cites"),
                status=OPEN,
            ),
            refreshed,
        )
    keys = {(item.kind, item.key) for item in found}
    stale = [
        row.id
        for k, row in existing.items()
        if row.status == OPEN and k not in keys and not k[1].startswith(REQUESTED)
    ]
    for start in range(0, len(stale), _CHUNK):
        conn.execute(
            s.update()
            .where(
                s.c.tenant_id == tenant_id,
                s.c.id.in_(stale[start : start + _CHUNK]),
                s.c.status == OPEN,
            )
            .values(status=EXPIRED)
        )


#: Keys of suggestions a person asked for ("Mute similar…" in Slack): the history job
#: neither finds nor expires them; a person accepts or dismisses them.
REQUESTED = "requested:"


def request_mute(
    conn: sa.Connection,
    tenant_id: str,
    incident_id: str,
    actor: str,
    now: datetime,
    never_suppress: Iterable[str] = (),
) -> dict[str, Any] | str:
    """A ``tune`` suggestion to silence the incident's noisiest fingerprint for 30
    days, for review; or why none is made. Never for a critical incident or one on a
    ``never_suppress`` service (names compare case-insensitively, as the noise cap's
    do): those are always delivered, and nothing on them is proposed for muting."""
    i, a = t.incidents, t.alerts
    incident = conn.execute(
        sa.select(i).where(i.c.tenant_id == tenant_id, i.c.id == incident_id)
    ).first()
    if incident is None:
        return "no such incident"
    if incident.severity == "critical":
        return "critical incidents are never muted"
    protected = {name.casefold() for name in never_suppress}
    listed = sorted(x for x in incident.services if str(x).casefold() in protected)
    if listed:
        return f"{', '.join(listed)} is on the never-suppress list: never muted"
    top = conn.execute(
        sa.select(a.c.fingerprint, a.c.title, a.c.service, a.c.repeat_count)
        .where(a.c.tenant_id == tenant_id, a.c.incident_id == incident_id)
        .order_by(a.c.repeat_count.desc(), a.c.id)
        .limit(1)
    ).first()
    if top is None:
        return "the incident has no alerts"
    key = f"{REQUESTED}{top.fingerprint}"
    suggestion = Suggestion(
        kind="tune",
        key=key,
        title=f"Mute {top.title!r} for 30 days (asked for by {actor})",
        evidence={"repeats": int(top.repeat_count)},
        proposal={
            "matchers": format_matchers([Matcher("fingerprint", "=", top.fingerprint)]),
            "duration_days": 30,
            "service": top.service,
        },
    )
    s = t.suggestions
    existing = conn.execute(
        sa.select(s).where(s.c.tenant_id == tenant_id, s.c.kind == "tune", s.c.key == key)
    ).first()
    if existing is None:
        insert_ignoring_duplicates(
            conn,
            s,
            [
                {
                    "id": new_id(),
                    "tenant_id": tenant_id,
                    "kind": suggestion.kind,
                    "key": key,
                    "title": suggestion.title,
                    "evidence": suggestion.evidence,
                    "proposal": suggestion.proposal,
                    "cites": [],
                    "status": OPEN,
                    "created_at": now,
                    "decided_at": None,
                }
            ],
        )
    row = conn.execute(
        sa.select(s).where(s.c.tenant_id == tenant_id, s.c.kind == "tune", s.c.key == key)
    ).one()
    return suggestion_dict(row)


def suggestion_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "key": row.key,
        "title": row.title,
        "evidence": row.evidence,
        "proposal": row.proposal,
        "cites": row.cites,
        "status": row.status,
        "created_at": row.created_at,
        "decided_at": row.decided_at,
    }


def list_suggestions(
    conn: sa.Connection,
    tenant_id: str,
    status: str | None,
    kind: str | None,
    limit: int,
    after_id: str | None,
) -> Page:
    """Newest first; ``after_id`` is the last id of the previous page."""
    s = t.suggestions
    query = sa.select(s).where(s.c.tenant_id == tenant_id)
    if status is not None:
        query = query.where(s.c.status == status)
    if kind is not None:
        query = query.where(s.c.kind == kind)
    if after_id is not None:
        query = query.where(s.c.id < after_id)
    rows = conn.execute(query.order_by(s.c.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[suggestion_dict(row) for row in rows],
        next_cursor=rows[-1].id if more and rows else None,
    )


def _get(conn: sa.Connection, tenant_id: str, suggestion_id: str) -> Any:
    s = t.suggestions
    return conn.execute(
        sa.select(s).where(s.c.tenant_id == tenant_id, s.c.id == suggestion_id)
    ).first()


def accept(
    conn: sa.Connection,
    tenant_id: str,
    suggestion_id: str,
    now: datetime,
    settings: TenantSettings,
) -> SuggestionVerdict | None:
    """Turn an open suggestion into its rule, in the caller's transaction. None when
    the tenant has no such suggestion; unchanged when it is no longer open."""
    if not _mark(conn, tenant_id, suggestion_id, ACCEPTED, (OPEN,), now):
        row = _get(conn, tenant_id, suggestion_id)
        return None if row is None else _unchanged(row)
    row = _get(conn, tenant_id, suggestion_id)
    rule = rule_for(row.id, new_id(), row.kind, row.title, row.proposal, now)
    described: dict[str, Any] | None = None
    if isinstance(rule, Dependency):
        insert_ignoring_duplicates(
            conn,
            t.service_dependencies,
            [{"tenant_id": tenant_id, "service": rule.service, "depends_on": rule.depends_on}],
        )
        described = {"kind": "dependency", "service": rule.service, "depends_on": rule.depends_on}
    elif isinstance(rule, DependencyRemoval):
        sd = t.service_dependencies
        conn.execute(
            sd.delete().where(
                sd.c.tenant_id == tenant_id,
                sd.c.service == rule.service,
                sd.c.depends_on == rule.depends_on,
            )
        )
        described = {
            "kind": "dependency_removed",
            "service": rule.service,
            "depends_on": rule.depends_on,
        }
    elif isinstance(rule, Silence):
        described = _insert_silence(conn, tenant_id, rule, now)
    return SuggestionVerdict(
        suggestion=suggestion_dict(row),
        changed=True,
        rule=described,
        note=accept_note(rule, settings),
    )


def dismiss(
    conn: sa.Connection, tenant_id: str, suggestion_id: str, now: datetime
) -> SuggestionVerdict | None:
    """Dismiss an open (or expired) suggestion: the job will not propose it again."""
    changed = _mark(conn, tenant_id, suggestion_id, DISMISSED, (OPEN, EXPIRED), now)
    row = _get(conn, tenant_id, suggestion_id)
    if row is None:
        return None
    if not changed:
        return _unchanged(row)
    return SuggestionVerdict(
        suggestion=suggestion_dict(row),
        changed=True,
        note="dismissed: it will not be proposed again",
    )


def _mark(
    conn: sa.Connection,
    tenant_id: str,
    suggestion_id: str,
    status: str,
    allowed: Sequence[str],
    now: datetime,
) -> bool:
    """Set the status if the current one allows it; False when it did not (or the
    suggestion does not exist). Checked in the UPDATE, so two people cannot both win."""
    s = t.suggestions
    result = conn.execute(
        s.update()
        .where(s.c.tenant_id == tenant_id, s.c.id == suggestion_id, s.c.status.in_(allowed))
        .values(status=status, decided_at=now)
    )
    return bool(result.rowcount)


def _unchanged(row: Any) -> SuggestionVerdict:
    return SuggestionVerdict(
        suggestion=suggestion_dict(row), changed=False, note=f"the suggestion is {row.status}"
    )


def _insert_silence(
    conn: sa.Connection, tenant_id: str, silence: Silence, now: datetime
) -> dict[str, Any]:
    row = {"id": silence.id, "tenant_id": tenant_id, **silence_columns(silence), "created_at": now}
    conn.execute(t.silences.insert().values(row))
    return {"kind": "silence", **{k: v for k, v in row.items() if k != "tenant_id"}}


# --------------------------------------------------------------------------- replay


def replay_source(
    conn: sa.Connection,
    tenant_id: str,
    since: datetime,
    until: datetime,
    limit: int,
    deploy_lookback: timedelta,
) -> ReplaySource:
    """Stored alerts that started in ``[since, until)``, in event-time order (at most
    ``limit``), the deploys that may attach to them, and what actually happened to
    them: every decision taken on them and whether the incidents they are in now paged."""
    a, d, dec, i = t.alerts, t.deploys, t.decisions, t.incidents
    rows = conn.execute(
        sa.select(a)
        .where(a.c.tenant_id == tenant_id, a.c.started_at >= since, a.c.started_at < until)
        .order_by(a.c.started_at, a.c.id)
        .limit(limit + 1)
    ).all()
    truncated = len(rows) > limit
    records = [alert_record(row) for row in rows[:limit]]
    deploys = conn.execute(
        sa.select(d)
        .where(
            d.c.tenant_id == tenant_id,
            d.c.started_at >= since - deploy_lookback,
            d.c.started_at < until,
        )
        .order_by(d.c.started_at, d.c.id)
    ).all()
    ids = [r.id for r in records]
    decisions: list[ActualDecision] = []
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        decisions.extend(
            ActualDecision(
                alert_id=row.alert_id,
                page=row.page,
                suppressed_by=row.suppressed_by,
                would_suppress=row.would_suppress,
            )
            for row in conn.execute(
                sa.select(dec.c.alert_id, dec.c.page, dec.c.suppressed_by, dec.c.would_suppress)
                .where(dec.c.tenant_id == tenant_id, dec.c.alert_id.in_(chunk))
                .order_by(dec.c.at, dec.c.id)
            )
        )
    incident_ids = sorted({r.incident_id for r in records if r.incident_id})
    paged: dict[str, bool] = {}
    for start in range(0, len(incident_ids), _CHUNK):
        chunk = incident_ids[start : start + _CHUNK]
        found = conn.execute(
            sa.select(i.c.id, i.c.paged).where(i.c.tenant_id == tenant_id, i.c.id.in_(chunk))
        ).all()
        paged.update((row.id, row.paged) for row in found)
    return ReplaySource(
        records=records,
        deploys=[deploy_ref(row) for row in deploys],
        decisions=decisions,
        incident_paged=paged,
        truncated=truncated,
    )
