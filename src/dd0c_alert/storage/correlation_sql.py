"""Reading and writing the correlation engine's state in SQL.

The engine is pure; these functions load what it needs for one tenant's batch (the
incidents near the batch in event time, recent deploys, history of the batch's
fingerprints) and persist what it decided, inside the worker's transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence, Set
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dd0c_alert.correlation.dedup import Fold, FoldResult
from dd0c_alert.correlation.engine import EngineState, event_time, shift
from dd0c_alert.correlation.model import (
    Decision,
    DeployRef,
    FingerprintHistory,
    IncidentState,
    IncidentStatus,
    Rules,
    TenantSettings,
)
from dd0c_alert.domain.ids import new_id
from dd0c_alert.domain.models import DeployEvent, Severity

from . import incident_search
from . import schema as t
from .alert_records import record as alert_record
from .bulk import execute_many, insert_ignoring_duplicates
from .in_lists import one_of

HISTORY = timedelta(days=7)
QUICK_RESOLVE = timedelta(minutes=2)
_CHUNK = 500
_INSERT_DECISION = t.decisions.insert()
_INSERT_EVENT = t.incident_events.insert()
#: An incident row keeps at most this many of its fingerprints. Correlating a batch
#: only needs the batch's own fingerprints in the incident (the engine adds them in
#: memory; history is loaded for them alone), so the stored list is a sample. Keeping
#: every one made a storm incident rewrite a list of hundreds of thousands of
#: fingerprints on every batch: quadratic in the storm's size.
MAX_STORED_FINGERPRINTS = 1000
#: A batch reads the history of at most this many fingerprints of the incidents it may
#: touch besides its own alerts' (``_incident_fingerprints``).
MAX_HISTORY_FINGERPRINTS = 200


def load_state(
    conn: sa.Connection,
    tenant_id: str,
    settings: TenantSettings,
    rules: Rules,
    folds: Sequence[FoldResult],
    deploys: Sequence[DeployRef],
    stored: Set[str],
) -> EngineState:
    """What correlating ``folds`` and ``deploys`` needs. History is read only for the
    fingerprints in ``stored``, those with an occurrence already stored: a storm of
    first-time alerts has none, and asking anyway was 4 % of a storm's worker time."""
    times = [event_time(f.alert) for f in folds] + [d.started_at for d in deploys]
    window = timedelta(seconds=settings.correlation_window_seconds)
    lookback = timedelta(seconds=settings.deploy_lookback_seconds)
    low, high = min(times), max(times)
    i = t.incidents
    near = (i.c.last_at >= shift(low, -3 * window)) & (
        i.c.first_at <= shift(high, 3 * window + lookback)
    )
    known = {f.record.incident_id for f in folds if f.record.incident_id}
    wanted = near if not known else near | one_of(conn, i.c.id, sorted(known))
    rows = conn.execute(
        sa.select(i).where(i.c.tenant_id == tenant_id, i.c.merged_into.is_(None), wanted)
    ).all()
    state = EngineState(
        tenant_id=tenant_id,
        settings=settings,
        rules=rules,
        incidents={row.id: _incident(row) for row in rows},
    )
    d = t.deploys
    deploy_rows = conn.execute(
        sa.select(d).where(
            d.c.tenant_id == tenant_id,
            d.c.started_at >= shift(low, -lookback),
            d.c.started_at <= high,
        )
    ).all()
    state.deploys = [deploy_ref(row) for row in deploy_rows]
    batch = {f.record.alert.fingerprint for f in folds} & stored
    fingerprints = sorted(batch | _incident_fingerprints(state, known, batch))
    _load_history(conn, state, fingerprints, low, high)
    if rules.inhibitions and settings.features.inhibition:
        a = t.alerts
        firing = conn.execute(
            sa.select(a).where(a.c.tenant_id == tenant_id, a.c.status == "firing").limit(10_000)
        ).all()
        state.firing = [alert_record(row).alert for row in firing]
    return state


def _incident_fingerprints(state: EngineState, known: Set[str], batch: Set[str]) -> set[str]:
    """The fingerprints of the incidents the batch may touch, beyond its own: a touched
    incident is rescored from the history of all its fingerprints, and with only the
    batch's, an alert joining a noisy incident took the others' reasons away (35 down
    to 5 when a first-time alert joined a CPU blip that always auto-resolved). The
    incidents the batch's alerts belong to come first; at most
    :data:`MAX_HISTORY_FINGERPRINTS` more are read, so a storm stays cheap."""
    order = sorted(state.incidents.values(), key=lambda x: (x.id not in known, x.id))
    extra: set[str] = set()
    for incident in order:
        for fingerprint in sorted(incident.fingerprints - batch - extra):
            if len(extra) >= MAX_HISTORY_FINGERPRINTS:
                return extra
            extra.add(fingerprint)
    return extra


def _load_history(
    conn: sa.Connection, state: EngineState, fingerprints: list[str], low: datetime, high: datetime
) -> None:
    """Per fingerprint: the last 7 days' outcomes (for the noise score) and recent state
    changes (for flapping)."""
    a, i, f = t.alerts, t.incidents, t.feedback
    flap = timedelta(seconds=state.settings.flap_window_seconds)
    since, flap_low, flap_high = shift(low, -HISTORY), shift(low, -flap), shift(high, flap)
    transitions = state.transitions
    stats: dict[str, dict[str, int]] = {}
    for start in range(0, len(fingerprints), _CHUNK):
        chunk = fingerprints[start : start + _CHUNK]
        rows = conn.execute(
            sa.select(a.c.fingerprint, a.c.started_at, a.c.ended_at, i.c.acknowledged_at)
            .select_from(a.outerjoin(i, i.c.id == a.c.incident_id))
            .where(
                a.c.tenant_id == state.tenant_id,
                one_of(conn, a.c.fingerprint, chunk),
                a.c.started_at >= since,
            )
        ).all()
        for fingerprint, started_at, ended_at, acknowledged_at in rows:
            counts = stats.setdefault(fingerprint, {})
            counts["fired"] = counts.get("fired", 0) + 1
            if acknowledged_at is not None:
                counts["acknowledged"] = counts.get("acknowledged", 0) + 1
            elif ended_at is not None and ended_at - started_at <= QUICK_RESOLVE:
                counts["quick"] = counts.get("quick", 0) + 1
            times = transitions.setdefault(fingerprint, [])
            if flap_low <= started_at <= flap_high:
                times.append(started_at)
            if ended_at is not None and flap_low <= ended_at <= flap_high:
                times.append(ended_at)
        verdicts = conn.execute(
            # One verdict counts once, however many occurrences of the alert it covers.
            sa.select(a.c.fingerprint, f.c.verdict, sa.func.count(sa.distinct(f.c.id)))
            .select_from(
                f.join(a, (a.c.incident_id == f.c.incident_id) & (a.c.tenant_id == f.c.tenant_id))
            )
            .where(f.c.tenant_id == state.tenant_id, one_of(conn, a.c.fingerprint, chunk))
            .group_by(a.c.fingerprint, f.c.verdict)
        ).all()
        for fingerprint, verdict, count in verdicts:
            stats.setdefault(fingerprint, {})[verdict] = count
    for times in state.transitions.values():
        times.sort()
    state.history = {
        fingerprint: FingerprintHistory(
            fired=c.get("fired", 0),
            quick_auto_resolved=c.get("quick", 0),
            acknowledged=c.get("acknowledged", 0),
            noise_feedback=c.get("noise", 0),
            useful_feedback=c.get("useful", 0),
        )
        for fingerprint, c in stats.items()
    }


def save_state(
    conn: sa.Connection,
    state: EngineState,
    loaded: Iterable[str],
    pairs: Sequence[tuple[FoldResult, Decision]],
) -> None:
    """Persist the incidents the batch touched, merges, and one decision per alert."""
    existing = set(loaded)
    now = datetime.now(UTC)
    # Refolded incidents changed only their count; they are written the same way.
    written = [state.incidents[x] for x in sorted(state.touched | state.refolded)]
    execute_many(
        conn, _INSERT_INCIDENT, [_incident_row(x, now) for x in written if x.id not in existing]
    )
    _update_incidents(
        conn,
        [x for x in written if x.id in existing and x.id in state.touched],
        set(state.merges.values()),
        now,
    )
    # Only their count of folded deliveries moved: nothing else is rewritten (every
    # column named is re-indexed, JSON lists included, for each incident a batch's
    # repeats reached).
    execute_many(
        conn,
        _COUNT_FOLDED,
        [
            {"_id": x.id, "folded": x.folded, "updated_at": now}
            for x in written
            if x.id in existing and x.id not in state.touched
        ],
    )
    insert_ignoring_duplicates(
        conn,
        t.incident_services,
        [
            {"tenant_id": x.tenant_id, "service": service, "incident_id": x.id}
            for x in written
            if x.id in state.touched and x.merged_into is None
            for service in x.services
        ],
    )
    for merged, into in state.merges.items():
        conn.execute(
            t.alerts.update()
            .where(t.alerts.c.tenant_id == state.tenant_id, t.alerts.c.incident_id == merged)
            .values(incident_id=into)
        )
    _record_merges(conn, state)
    incident_search.save_batch(conn, state, pairs)
    kept = [(fold, decision) for fold, decision in pairs if worth_a_row(fold, decision)]
    if kept:
        execute_many(
            conn,
            _INSERT_DECISION,
            [
                {
                    "id": new_id(),
                    "tenant_id": state.tenant_id,
                    "alert_id": decision.alert_id,
                    "incident_id": decision.incident_id,
                    "event_id": fold.event_id,
                    "outcome": decision.outcome,
                    "reasons": decision.reasons,
                    "page": decision.page,
                    "flapping": decision.flapping,
                    "suppressed_by": decision.suppressed_by,
                    "would_suppress": decision.would_suppress,
                    "inhibited_by": decision.inhibited_by,
                    "at": event_time(fold.alert),
                    "replayed_at": None,
                }
                for fold, decision in kept
            ],
        )


def worth_a_row(fold: FoldResult, decision: Decision) -> bool:
    """Whether a decision is stored. Not a plain repeat's (another notification of a
    firing alert that changed nothing: no page, no rule, no higher severity): the
    alert's ``repeat_count`` and ``last_seen_at`` already say it came, and the placement
    decision still explains where the alert went. Alertmanager re-sends a firing group
    every few minutes; a row for each filled the incident's timeline with "repeat #n"
    entries dated at the alert's start, which pushed the later joins and the resolve
    past the timeline's limit, and it wrote a third of the worker's bytes in a mix of
    repeats (bench/README.md)."""
    return not (
        fold.fold is Fold.REPEAT
        and not decision.page
        and decision.suppressed_by is None
        and decision.would_suppress is None
        and len(decision.reasons) == 1
    )


#: Columns people set (ack, snooze): a worker writes them back only for an incident
#: that took another in (``engine.absorb`` combined them), so it never overwrites an
#: acknowledgement made while it correlated with the copy it loaded before.
HUMAN_COLUMNS = ("acknowledged_at", "snoozed_until")
#: Who a merge by a bridging alert is recorded as, on both incidents' timelines.
ENGINE_ACTOR = "correlation"


def _update_incidents(
    conn: sa.Connection, incidents: Sequence[IncidentState], absorbed: Set[str], now: datetime
) -> None:
    """Write back loaded incidents the batch changed: one ``executemany`` per shape."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for incident in incidents:
        row = {"_id": incident.id, **_incident_row(incident, now)}
        if incident.id not in absorbed:
            for column in HUMAN_COLUMNS:
                del row[column]
        shapes.setdefault(tuple(row), []).append(row)
    for keys, rows in shapes.items():
        execute_many(conn, _update_incident(keys), rows)


def _record_merges(conn: sa.Connection, state: EngineState) -> None:
    """A bridge's merge on both timelines, as a merge by hand is recorded
    (``incident_queries.merge``), at the merged incident's end (the bridging alert's
    time, or its own last alert's if later: ``engine._merge``). Without each side's
    services: those entries are what the suggestion engine learns people's
    corrections from, and this is none."""
    rows = []
    for merged, into in state.merges.items():
        at = state.incidents[merged].resolved_at
        for incident_id, detail in ((merged, {"into": into}), (into, {"merged": merged})):
            rows.append(
                {
                    "id": new_id(),
                    "tenant_id": state.tenant_id,
                    "incident_id": incident_id,
                    "kind": "merge",
                    "actor": ENGINE_ACTOR,
                    "detail": detail,
                    "at": at,
                }
            )
    execute_many(conn, _INSERT_EVENT, rows)


def deploy_ref(row: Any) -> DeployRef:
    return DeployRef(
        id=row.id,
        service=row.service,
        started_at=row.started_at,
        version=row.version,
        author=row.author,
        title=row.title,
        url=row.url,
        environment=row.environment,
    )


def stored_deploy_refs(conn: sa.Connection, deploys: Sequence[DeployEvent]) -> list[DeployRef]:
    """The stored versions of a batch's deploys (status updates fold into older rows)."""
    d = t.deploys
    refs: list[DeployRef] = []
    for deploy in deploys:
        row = conn.execute(
            sa.select(d).where(
                d.c.tenant_id == deploy.tenant_id,
                d.c.source == deploy.source,
                d.c.source_ref == deploy.source_ref,
            )
        ).first()
        if row is not None:
            refs.append(deploy_ref(row))
    return refs


def _deploy_dict(ref: DeployRef) -> dict[str, Any]:
    return {
        "id": ref.id,
        "service": ref.service,
        "started_at": ref.started_at.isoformat(),
        "version": ref.version,
        "author": ref.author,
        "title": ref.title,
        "url": ref.url,
        "environment": ref.environment,
    }


def _incident_row(incident: IncidentState, now: datetime) -> dict[str, Any]:
    return {
        "id": incident.id,
        "tenant_id": incident.tenant_id,
        "status": incident.status,
        "title": incident.title,
        "severity": incident.severity,
        "services": sorted(incident.services),
        "first_at": incident.first_at,
        "last_at": incident.last_at,
        "resolved_at": incident.resolved_at,
        "alert_count": incident.alert_count,
        "firing": incident.firing,
        "folded": incident.folded,
        "probable_root": incident.probable_root,
        "deploys": [_deploy_dict(d) for d in incident.deploys],
        "noise_score": incident.noise_score,
        "noise_reasons": incident.noise_reasons,
        "fingerprints": sorted(incident.fingerprints)[:MAX_STORED_FINGERPRINTS],
        "flapping": sorted(incident.flapping),
        "paged": incident.paged,
        "merged_into": incident.merged_into,
        "acknowledged_at": incident.acknowledged_at,
        "snoozed_until": incident.snoozed_until,
        "updated_at": now,
    }


_INSERT_INCIDENT = t.incidents.insert()
_COUNT_FOLDED = (
    t.incidents.update()
    .where(t.incidents.c.id == sa.bindparam("_id"))
    .values(folded=sa.bindparam("folded"), updated_at=sa.bindparam("updated_at"))
)


@functools.cache
def _update_incident(keys: tuple[str, ...]) -> sa.Update:
    """The update of the columns a worker row gives (an acknowledgement or a snooze,
    set by people, is left alone), built once."""
    columns: dict[str, Any] = {
        k: sa.bindparam(k) for k in keys if k not in ("_id", "id", "tenant_id")
    }
    return t.incidents.update().where(t.incidents.c.id == sa.bindparam("_id")).values(columns)


def _incident(row: Any) -> IncidentState:
    return IncidentState(
        id=row.id,
        tenant_id=row.tenant_id,
        status=IncidentStatus(row.status),
        title=row.title,
        severity=Severity(row.severity),
        services=set(row.services),
        first_at=row.first_at,
        last_at=row.last_at,
        alert_count=row.alert_count,
        firing=row.firing,
        folded=row.folded,
        resolved_at=row.resolved_at,
        probable_root=row.probable_root,
        deploys=[
            DeployRef(**{**d, "started_at": datetime.fromisoformat(d["started_at"])})
            for d in row.deploys
        ],
        noise_score=row.noise_score,
        noise_reasons=list(row.noise_reasons),
        fingerprints=set(row.fingerprints),
        flapping=set(row.flapping),
        paged=row.paged,
        merged_into=row.merged_into,
        acknowledged_at=row.acknowledged_at,
        snoozed_until=row.snoozed_until,
    )


#: For the human edits of incidents (``incident_queries.merge``).
incident_state = _incident
incident_row = _incident_row
