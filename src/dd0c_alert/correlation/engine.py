"""The correlation engine: folded alerts in, explained incident decisions out.

Pure and deterministic. The caller loads an ``EngineState`` for one tenant (incidents
whose alerts lie near the batch in event time, recent deploys, rules, history), calls
``correlate``, and persists what changed. Everything runs on event time — the alert's
own timestamp — so a delayed sender, a backfill or a replay of history yields the
incidents live delivery would have.

Grouping (design §6.2-6.4): a new alert joins an incident of the same service, or of a
service connected to it by declared dependencies, when its event time lies within the
correlation window W of the incident's span. A late alert (event time before the
incident's latest: it arrived out of order) may join within 2W of
any incident, and within 3W of one still open; it is placed at its own time and
never re-pages. An alert that bridges two open incidents merges the younger into the
older, so the grouping does not depend on delivery order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert
from dd0c_alert.domain.severity import worst

from .dedup import Fold, FoldResult
from .model import (
    Decision,
    DeployRef,
    Features,
    FingerprintHistory,
    IncidentState,
    IncidentStatus,
    Outcome,
    Rules,
    TenantSettings,
)
from .noise import noise_score
from .rules import InhibitionIndex, govern, silencing
from .topology import topology_index


@dataclass(slots=True, kw_only=True)
class EngineState:
    """What the engine reads for one tenant's batch, and mutates as it decides."""

    tenant_id: str
    settings: TenantSettings
    rules: Rules
    incidents: dict[str, IncidentState]
    deploys: list[DeployRef] = field(default_factory=list)
    #: Firing alerts of the tenant that may inhibit others.
    firing: list[CanonicalAlert] = field(default_factory=list)
    #: ``firing`` indexed for inhibition lookups; built on first use.
    inhibition: InhibitionIndex | None = None
    #: fingerprint -> event times of its recent state changes (firing / resolved).
    transitions: dict[str, list[datetime]] = field(default_factory=dict)
    history: dict[str, FingerprintHistory] = field(default_factory=dict)
    #: incident id -> the incident it was merged into, during this batch.
    merges: dict[str, str] = field(default_factory=dict)
    touched: set[str] = field(default_factory=set)
    #: Incidents whose only change is ``folded`` (a repeat delivery): their count is
    #: stored, without the rescoring and notification a touched incident gets.
    refolded: set[str] = field(default_factory=set)
    #: services -> everything they depend on, transitively; (services, first service)
    #: -> probable root. The rules do not change during a batch, and every joining
    #: alert asks again, though an incident's services rarely change.
    upstream: dict[frozenset[str], frozenset[str]] = field(default_factory=dict)
    roots: dict[tuple[frozenset[str], str], str] = field(default_factory=dict)


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def shift(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, clamped to the representable range (senders do send year 9999)."""
    try:
        return moment + delta
    except OverflowError:
        return _LATEST if delta > timedelta(0) else _EARLIEST


def event_time(alert: CanonicalAlert) -> datetime:
    """When the notification's state change happened, by the sender's clock."""
    if alert.status is AlertStatus.RESOLVED and alert.ended_at is not None:
        return alert.ended_at
    return alert.started_at


def group_key(alert: CanonicalAlert) -> str:
    """Alerts without a service group by their title, never all together."""
    return alert.service or f"(no service) {alert.title}"


def correlate(
    state: EngineState,
    folds: Sequence[FoldResult],
    deploys: Sequence[DeployRef],
    new_id: Callable[[], str],
    tick: Callable[[], None] | None = None,
) -> list[Decision]:
    """Decide every folded alert of one tenant's batch; update ``state`` in place.

    Each ``FoldResult.record.incident_id`` is set to the incident the alert belongs to.
    ``tick`` is called before each alert: the worker's time budget raises from it, so
    a batch that costs too much stops between alerts instead of running on.
    """
    for deploy in deploys:
        _add_deploy(state, deploy)
    decisions = []
    for result in folds:
        if tick is not None:
            tick()
        decisions.append(_decide(state, result, new_id))
    for result in folds:  # an incident merged later in the batch hands its alerts on
        live = _live(state, result.record.incident_id) if state.merges else None
        if live is not None:
            result.record.incident_id = live.id
    for incident_id in state.touched:
        incident = state.incidents[incident_id]
        if incident.merged_into is None:
            incident.noise_score, incident.noise_reasons = noise_score(
                incident, state.history, state.settings
            )
    return decisions


def _decide(state: EngineState, result: FoldResult, new_id: Callable[[], str]) -> Decision:
    record, alert = result.record, result.alert
    known = _live(state, record.incident_id) if record.incident_id else None
    if result.fold is Fold.NEW or known is None:
        return _place(state, result, new_id)
    if result.fold is Fold.RESOLVE:
        _note_transition(state, alert.fingerprint, event_time(alert))
        known.firing = max(0, known.firing - 1)
        reasons = [f"resolves alert {alert.id}"]
        if known.firing == 0 and state.settings.auto_resolve:
            known.status = IncidentStatus.RESOLVED
            known.resolved_at = max(known.resolved_at or event_time(alert), event_time(alert))
            reasons.append("every alert of the incident has resolved: incident resolved")
        record.incident_id = known.id
        state.touched.add(known.id)
        return Decision(
            alert_id=alert.id, incident_id=known.id, outcome=Outcome.RESOLVED, reasons=reasons
        )
    record.incident_id = known.id
    known.folded += 1
    state.refolded.add(known.id)
    what = {
        Fold.REPEAT: f"repeat #{record.repeat_count} of alert {alert.id}",
        Fold.LATE_REPEAT: f"late copy of alert {alert.id}, which already ended",
        Fold.REPEAT_RESOLVE: f"repeated resolve of alert {alert.id}",
    }[result.fold]
    reasons = [f"{what} (fingerprint {alert.fingerprint})"]
    if result.fold is Fold.REPEAT_RESOLVE:
        _follow_the_end(state, known, alert)
    raised = worst(known.severity, alert.severity)
    if raised is not known.severity:  # a repeat that escalated: the incident is worse
        known.severity = raised
        state.touched.add(known.id)  # rescored, and its notifications updated
        reasons.append(f"raises the incident's severity to {raised.value}")
    decision = Decision(
        alert_id=alert.id, incident_id=known.id, outcome=Outcome.DEDUP, reasons=reasons
    )
    if result.fold is Fold.REPEAT:
        _page_once_released(state, result, known, decision)
    if not decision.page:
        reasons[0] += ": no new page"
    return decision


def _follow_the_end(state: EngineState, incident: IncidentState, alert: CanonicalAlert) -> None:
    """A resolve sent again with a later end moved its alert's end (``dedup``): an
    incident its alerts resolved ends no earlier than they do, or it would read as
    resolved before its last alert ended."""
    end = alert.ended_at
    if (
        end is None
        or incident.resolved_at is None
        or incident.firing
        or not state.settings.auto_resolve
        or end <= incident.resolved_at
    ):
        return
    incident.resolved_at = end
    state.touched.add(incident.id)


def _page_once_released(
    state: EngineState, result: FoldResult, incident: IncidentState, decision: Decision
) -> None:
    """A repeat of an alert still firing in an incident that never paged because a
    rule suppressed it: the rules are asked again, at the repeat's time, and when
    none suppresses it any more (the inhibiting alert resolved, the silence ended,
    the repeat is critical) the incident pages now.

    Alertmanager asks again at every notification; deciding once, when the alert
    arrived, would keep an alert that outlived the rule suppressed for ever.
    """
    alert = result.alert
    if (
        incident.paged
        or incident.status is not IncidentStatus.OPEN  # resolved, or someone is on it
        or alert.status is not AlertStatus.FIRING
        or alert.fingerprint in incident.flapping
    ):
        return
    probe = Decision(
        alert_id=alert.id, incident_id=incident.id, outcome=Outcome.DEDUP, reasons=[], page=True
    )
    seen = result.record.last_seen_at  # the repeat's arrival: the rules as they are now
    _govern(state, alert, seen, seen, probe)
    if probe.suppressed_by is not None:
        return
    decision.page = incident.paged = True
    decision.would_suppress, decision.inhibited_by = probe.would_suppress, probe.inhibited_by
    decision.reasons.append(
        "no rule suppresses it any more and the incident has not paged yet: it pages now"
    )
    decision.reasons.extend(probe.reasons)
    state.touched.add(incident.id)


def _live(state: EngineState, incident_id: str) -> IncidentState | None:
    """Follow merges to the incident that absorbed this one."""
    incident = state.incidents.get(incident_id)
    for _ in range(len(state.incidents)):  # a merge chain is never longer than this
        if incident is None or incident.merged_into is None:
            return incident
        incident = state.incidents.get(incident.merged_into)
    return None


def _place(state: EngineState, result: FoldResult, new_id: Callable[[], str]) -> Decision:
    """A new alert occurrence: find its incident, or open one."""
    settings = state.settings
    record, alert = result.record, result.alert
    at = event_time(alert)
    key = group_key(alert)
    flags = settings.features
    reasons = [_features_reason(flags)]
    flapping = _note_transition(state, alert.fingerprint, alert.started_at) and flags.flapping
    if alert.status is AlertStatus.RESOLVED:
        _note_transition(state, alert.fingerprint, at)

    matches = _candidates(state, alert, key, at)
    if matches:
        group = _bridged(matches)
        incident, gap, tier, via = group[0]
        was_resolved = incident.status is IncidentStatus.RESOLVED
        for other, other_gap, _, _ in group[1:]:
            _merge(state, into=incident, merged=other, at=at)
            reasons.append(
                f"bridges incident {other.id} ({_minutes(other_gap)} away): "
                f"merged into {incident.id}"
            )
        late = tier != "window"
        reopened = was_resolved and alert.status is AlertStatus.FIRING
        reasons.append(_join_reason(incident, key, via, gap, tier, settings))
        outcome = Outcome.LATE_JOINED if late else Outcome.JOINED
        # An incident nobody was told about (its alerts were suppressed, flapping or
        # already resolved) pages for the first alert that may: never a silent incident.
        unannounced = not incident.paged and alert.status is AlertStatus.FIRING
        page = (reopened and not late) or unannounced
        if unannounced:
            reasons.append("the incident has not paged yet")
        if was_resolved:
            _reopen(incident, reopened, late, reasons)
    else:
        incident = IncidentState(
            id=new_id(),
            tenant_id=state.tenant_id,
            status=IncidentStatus.OPEN,
            title=alert.title,
            severity=alert.severity,
            services={key},
            first_at=at,
            last_at=at,
            probable_root=key,
        )
        state.incidents[incident.id] = incident
        outcome, page = Outcome.NEW_INCIDENT, True
        window = _minutes(timedelta(seconds=settings.correlation_window_seconds))
        reasons.append(f"no incident of {key} or its neighbours within the {window} window")

    record.incident_id = incident.id
    _add_alert(state, incident, alert, at, key, flapping)
    if flapping:
        page = False
        reasons.append(
            f"fingerprint is flapping ({len(state.transitions[alert.fingerprint])} state changes "
            f"in {_minutes(timedelta(seconds=settings.flap_window_seconds))}): updated quietly"
        )
    if incident.paged and outcome is Outcome.NEW_INCIDENT:
        page = False
    if alert.status is AlertStatus.RESOLVED:
        page = False
        reasons.append("arrived already resolved: recorded, not paged")

    decision = Decision(
        alert_id=alert.id,
        incident_id=incident.id,
        outcome=outcome,
        reasons=reasons,
        page=page,
        flapping=flapping,
    )
    _govern(state, alert, at, alert.received_at, decision)
    if decision.page:
        incident.paged = True
    if alert.status is AlertStatus.FIRING:
        state.firing.append(alert)
    return decision


def _reopen(incident: IncidentState, firing: bool, late: bool, reasons: list[str]) -> None:
    """A resolved incident a firing alert joins is open again; one a bridge merged a
    live incident into is live already (``_combine_state``), acknowledged if that was."""
    if firing and incident.status is IncidentStatus.RESOLVED:
        incident.status = IncidentStatus.OPEN
        incident.resolved_at = None
    if incident.status is not IncidentStatus.RESOLVED:
        reasons.append("reopens the incident" + (" quietly (late alert)" if late else ""))


@functools.cache  # sixteen possible values, one per alert placed
def _features_reason(flags: Features) -> str:
    def state(on: bool) -> str:
        return "on" if on else "off"

    return (
        f"features: topology {state(flags.topology)}, deploys {state(flags.deploys)}, "
        f"flapping {state(flags.flapping)}, inhibition {state(flags.inhibition)}"
    )


def _candidates(
    state: EngineState, alert: CanonicalAlert, key: str, at: datetime
) -> list[tuple[IncidentState, timedelta, str, str]]:
    """Incidents this alert may join, best first, with the gap, tier and the service
    that connects them."""
    settings = state.settings
    window = timedelta(seconds=settings.correlation_window_seconds)
    max_span = timedelta(seconds=settings.max_incident_span_seconds)
    related = {key}
    if settings.features.topology and alert.service:
        related |= topology_index(state.rules.dependencies).neighbours(alert.service)
    found: list[tuple[IncidentState, timedelta, str, str]] = []
    for incident in state.incidents.values():
        # Most incidents share no service: tell so without building the intersection.
        if related.isdisjoint(incident.services):
            continue
        if incident.merged_into is not None or incident.tenant_id != alert.tenant_id:
            continue
        shared = related & incident.services
        gap = max(incident.first_at - at, at - incident.last_at, timedelta(0))
        if max(incident.last_at, at) - min(incident.first_at, at) > max_span:
            continue
        # Late means out of order: earlier than what the incident has already seen.
        # How long delivery took does not count, so a backfill groups like live.
        late = at < incident.last_at
        if gap <= window:
            tier = "window"
        elif late and gap <= 2 * window:
            tier = "late"
        elif late and gap <= 3 * window and incident.status is not IncidentStatus.RESOLVED:
            tier = "late_open"
        else:
            continue
        via = key if key in shared else min(shared)
        found.append((incident, gap, tier, via))
    found.sort(key=lambda m: (m[1], m[0].first_at, m[0].id))
    return found


_Match = tuple[IncidentState, timedelta, str, str]


def _bridged(matches: list[_Match]) -> list[_Match]:
    """The incidents this alert joins: the nearest, plus every other open one within
    the window (the alert bridges them), the oldest first: the younger merge into it.

    The oldest is the one that paged first, whose message people are reading and may
    have acknowledged; merging it into a younger one because the bridging alert lay
    nearer the younger would hand its alerts to an incident nobody had acknowledged.
    """
    group = [matches[0]] + [
        m for m in matches[1:] if m[2] == "window" and m[0].status is not IncidentStatus.RESOLVED
    ]
    return sorted(group, key=lambda m: (m[0].first_at, m[0].id))


def _join_reason(
    incident: IncidentState,
    key: str,
    via: str,
    gap: timedelta,
    tier: str,
    settings: TenantSettings,
) -> str:
    window = timedelta(seconds=settings.correlation_window_seconds)
    link = (
        f"same service {key}"
        if via == key
        else f"{key} is connected to {via} by declared dependencies"
    )
    if tier == "window":
        return f"{link}, {_minutes(gap)} from incident {incident.id} (window {_minutes(window)})"
    bound = "twice" if tier == "late" else "three times (incident still open)"
    return (
        f"late alert: {link}, {_minutes(gap)} from incident {incident.id}, within {bound} the "
        f"{_minutes(window)} window; placed at its own time, no page"
    )


def _add_alert(
    state: EngineState,
    incident: IncidentState,
    alert: CanonicalAlert,
    at: datetime,
    key: str,
    flapping: bool,
) -> None:
    first_service = incident.probable_root or key
    incident.alert_count += 1
    if alert.status is AlertStatus.FIRING:
        incident.firing += 1
    elif incident.firing == 0 and state.settings.auto_resolve:
        incident.status = IncidentStatus.RESOLVED
        incident.resolved_at = max(incident.resolved_at or at, at)
    incident.severity = worst(incident.severity, alert.severity)
    incident.services.add(key)
    incident.fingerprints.add(alert.fingerprint)
    if flapping:
        incident.flapping.add(alert.fingerprint)
    if at < incident.first_at:
        incident.first_at = at
        first_service = key
    incident.last_at = max(incident.last_at, at)
    incident.probable_root = _root(state, incident.services, first_service)
    if state.settings.features.deploys and state.deploys:  # none near a storm, mostly
        _attach_deploys(state, incident)
    state.touched.add(incident.id)


def _attach_deploys(state: EngineState, incident: IncidentState) -> None:
    """A deploy of an affected service, or of something it depends on, shortly
    before the incident began is its likely cause.

    One that started after the incident began is not: it is most often the response
    to it (a hotfix, a rollback), and naming it the cause would send the on-call after
    their own fix and score a real incident as deploy noise."""
    lookback = timedelta(seconds=state.settings.deploy_lookback_seconds)
    known = {d.id for d in incident.deploys}
    since = shift(incident.first_at, -lookback)
    fresh = {
        d.id: d
        for d in state.deploys
        if d.id not in known and since <= d.started_at <= incident.first_at
    }
    if fresh:
        suspects = set(incident.services)
        if state.settings.features.topology:
            suspects |= _upstream(state, incident.services)
        incident.deploys.extend(d for d in fresh.values() if d.service in suspects)
        _sort_deploys(incident)


def _sort_deploys(incident: IncidentState) -> None:
    incident.deploys.sort(key=lambda d: (d.started_at, d.id))


def _root(state: EngineState, services: set[str], first_service: str) -> str:
    memo = (frozenset(services), first_service)
    found = state.roots.get(memo)
    if found is None:
        topology = state.settings.features.topology and bool(state.rules.dependencies)
        found = state.roots[memo] = (
            topology_index(state.rules.dependencies).probable_root(services, first_service)
            if topology
            else first_service  # without topology: the service that alerted first
        )
    return found


def _upstream(state: EngineState, services: set[str]) -> frozenset[str]:
    """What the services depend on, transitively; out of walk budget, directly."""
    memo = frozenset(services)
    found = state.upstream.get(memo)
    if found is None:
        index = topology_index(state.rules.dependencies)
        found = index.reach(memo, upward=True)
        if found is None:
            found = frozenset(u for s in memo for u in state.rules.dependencies.get(s, ()))
        state.upstream[memo] = found
    return found


def _add_deploy(state: EngineState, ref: DeployRef) -> None:
    state.deploys = [d for d in state.deploys if d.id != ref.id] + [ref]
    if not state.settings.features.deploys:
        return
    for incident in state.incidents.values():  # a deploy reported late still attaches
        if incident.merged_into is None and incident.status is not IncidentStatus.RESOLVED:
            before = len(incident.deploys)
            _attach_deploys(state, incident)
            if len(incident.deploys) != before:
                state.touched.add(incident.id)


def _merge(state: EngineState, *, into: IncidentState, merged: IncidentState, at: datetime) -> None:
    """A bridge's merge ends the merged incident at the bridging alert's time, as a
    merge by hand ends it at the moment of the merge; but never before its own last
    alert: a bridge often lies between the two incidents, before the younger began,
    and the merged one would read as resolved before it opened."""
    absorb(into, merged)
    merged.resolved_at = max(at, merged.last_at)
    state.merges[merged.id] = into.id
    state.touched.update((into.id, merged.id))


def absorb(into: IncidentState, merged: IncidentState) -> None:
    """``into`` takes ``merged``'s alerts, services, times and what people did to it
    (``_combine_state``); ``merged`` points at it. Both merges (a bridging alert's, a
    person's) go through here, so they read alike."""
    into.alert_count += merged.alert_count
    into.folded += merged.folded
    into.firing += merged.firing
    into.severity = worst(into.severity, merged.severity)
    into.services |= merged.services
    into.fingerprints |= merged.fingerprints
    into.flapping |= merged.flapping
    into.first_at = min(into.first_at, merged.first_at)
    into.last_at = max(into.last_at, merged.last_at)
    into.paged = into.paged or merged.paged
    into.deploys.extend(d for d in merged.deploys if d.id not in {x.id for x in into.deploys})
    _sort_deploys(into)
    _combine_state(into, merged)
    merged.merged_into = into.id
    merged.status = IncidentStatus.RESOLVED
    # Its alerts fire in ``into`` now; its other counts stay as the record of what it held.
    merged.firing = 0


def _combine_state(into: IncidentState, merged: IncidentState) -> None:
    """The merged incident's status, from both sides' before the merge.

    Only a side still live (not resolved) speaks for the whole, unless neither is.
    Someone acknowledged either live side: the whole is acknowledged, since it holds
    the alerts they are working on (leaving it open would escalate it past them). Both
    resolved: it stays resolved, at the later end. The earliest acknowledgement is
    kept, as the timeline (which shows both sides' entries) names who made it. A
    snooze quiets what a person chose to quiet: the whole stays snoozed only if every
    live side was, until the earliest end, never hiding alerts nobody snoozed.
    """
    sides = [x for x in (into, merged) if x.status is not IncidentStatus.RESOLVED]
    if sides:
        acked = any(x.status is IncidentStatus.ACKNOWLEDGED for x in sides)
        into.status = IncidentStatus.ACKNOWLEDGED if acked else IncidentStatus.OPEN
        into.resolved_at = None
    else:
        sides = [into, merged]
        ends = [x.resolved_at for x in sides if x.resolved_at is not None]
        into.resolved_at = max(ends, default=None)
    snoozes = [x.snoozed_until for x in sides]
    into.snoozed_until = None if None in snoozes else min(s for s in snoozes if s is not None)
    acks = [x.acknowledged_at for x in (into, merged) if x.acknowledged_at is not None]
    into.acknowledged_at = min(acks, default=None)


def _note_transition(state: EngineState, fingerprint: str, at: datetime) -> bool:
    """Record a state change; True when the fingerprint now counts as flapping."""
    window = timedelta(seconds=state.settings.flap_window_seconds)
    times = state.transitions.setdefault(fingerprint, [])
    if at not in times:
        times.append(at)
        times.sort()
    since, until = shift(at, -window), shift(at, window)
    return sum(since <= t <= until for t in times) >= state.settings.flap_threshold


def _govern(
    state: EngineState, alert: CanonicalAlert, at: datetime, arrived: datetime, decision: Decision
) -> None:
    """Human-made rules (silences, inhibitions) may suppress delivery, as governance allows.

    A silence holds back an alert it covers at ``at`` (its start) or at ``arrived``.
    Alertmanager asks at notification time: a silence made for an alert seen firing
    elsewhere must hold back its first notification, though the alert started before
    the silence did. One that covered the start and ended before the arrival (a
    maintenance window's last minute) still holds it; if the alert outlives it, its
    next repeat pages (``_page_once_released``)."""
    rule_id, kind = None, ""
    silences = state.rules.silences
    silence = silencing(silences, alert, at) or silencing(silences, alert, arrived)
    if silence is not None:
        rule_id, kind = silence.id, "silence"
        decision.reasons.append(
            f"matches silence {silence.id}"
            + (f" by {silence.author}" if silence.author else "")
            + (f": {silence.comment}" if silence.comment else "")
        )
    elif state.settings.features.inhibition and state.rules.inhibitions:
        index = state.inhibition
        if index is None or index.firing is not state.firing:
            index = state.inhibition = InhibitionIndex(state.rules.inhibitions, state.firing)
        found = index.find(alert)
        if found is not None:
            rule, source = found
            rule_id, kind = rule.id, "inhibition"
            decision.inhibited_by = source.id
            decision.reasons.append(
                f"inhibited by firing alert {source.id} ({source.title}) under rule {rule.id}"
            )
    if rule_id is None:
        return
    verdict = govern(alert, rule_id, kind, state.settings)
    decision.reasons.extend(verdict.reasons)
    decision.suppressed_by = verdict.suppressed_by
    decision.would_suppress = verdict.would_suppress
    if verdict.suppressed_by is not None:
        decision.page = False


@functools.lru_cache(maxsize=1024)  # a storm's gaps and windows repeat
def _minutes(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    return f"{minutes} min" if not rest else f"{minutes} min {rest} s"
