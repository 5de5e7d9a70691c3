"""Suggestions from history (design §6.9): advice a human approves, never an action.

A scheduled job hands :func:`suggest` a tenant's recent history; it answers with what
an experienced SRE reviewing that history would propose:

``tune``
    a fingerprint that fires often and never needed anyone ("fired 37 times this week,
    always auto-resolved within 2 min, never acknowledged"); proposal: mute it for
    :data:`TUNE_MUTE_DAYS` days while it is fixed at its source.
``silence``
    a fingerprint that only ever fires in one recurring window (a nightly backup, a
    weekly batch); proposal: a recurring silence for that window.
``link``
    two services whose incidents keep starting together although no dependency
    connects them, or whose incidents people keep merging by hand; proposal: declare
    the dependency, so they group into one incident.
``unlink``
    a declared dependency whose grouping people keep undoing: they split the alerts of
    one service out of incidents of the other; proposal: remove the dependency.
``deploy_grace``
    a service whose alerts mostly follow its own deploys; proposal: a grace window
    after its deploys.

Safety comes first, as everywhere in the engine: ``tune`` and ``silence`` are never
proposed for a fingerprint that was ever critical, ever acknowledged or marked
useful in the loaded history, nor for a never-suppress service; ``deploy_grace`` is
never proposed for a never-suppress service and its counts leave critical alerts out.
Every proposed mute names the fingerprint, so it can never match another alert.
People's corrections weigh more than co-occurrence: a pair people split apart is
never proposed as a ``link``, and suggestions learnt from merges and splits cite them.

Pure and deterministic: the same history gives the same suggestions in the same
order, whatever the order of its records.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any, Literal

from dd0c_alert.domain.models import Severity
from dd0c_alert.domain.severity import worst

from .model import Matcher, Rules, Silence, TenantSettings
from .rules import format_matchers, parse_matchers

Kind = Literal["tune", "silence", "link", "unlink", "deploy_grace"]
KINDS: tuple[Kind, ...] = ("tune", "silence", "link", "unlink", "deploy_grace")

#: Counts for tuning, linking and deploy grace look at this much history.
HISTORY = timedelta(days=7)
#: Recurring windows need several weeks to be seen recurring; the safety signals
#: (critical, acknowledged, "useful") are checked over this whole span too.
SILENCE_HISTORY = timedelta(days=28)
#: "Auto-resolved quickly": ended within this long of starting, nobody acknowledged it.
QUICK_RESOLVE = timedelta(minutes=2)

#: ``tune``: at least this many firings in :data:`HISTORY`...
TUNE_MIN_FIRED = 10
#: ...of which at least this share auto-resolved quickly...
TUNE_QUICK_SHARE = Fraction(4, 5)
#: ...or, with no "useful" verdict, at least this many "noise" verdicts...
TUNE_MIN_NOISE_FEEDBACK = 2
#: ...on a fingerprint that fired at least this often in :data:`HISTORY`.
TUNE_MIN_FIRED_WITH_FEEDBACK = 5
#: How long the mute an accepted ``tune`` creates lasts: long enough to fix the alert
#: at its source, short enough that a forgotten mute expires.
TUNE_MUTE_DAYS = 30

#: ``link``: the two services' incidents started together at least this often...
LINK_MIN_TOGETHER = 3
#: ...in at least this share of the bursts of the service that alerted less.
LINK_MIN_SHARE = Fraction(3, 5)
#: The service alerting first in at least this share of those bursts is upstream.
LINK_LEAD_SHARE = Fraction(2, 3)
#: A burst touching more services than this is a storm: it says nothing about pairs.
LINK_MAX_BURST_SERVICES = 6

#: Merges and splits by hand are rare, so they count over :data:`SILENCE_HISTORY`:
#: ``link`` from at least this many merges of incidents of the two services...
LINK_MIN_MERGES = 2
#: ...``unlink`` from at least this many splits of the two services apart.
UNLINK_MIN_SPLITS = 2
#: Merges and splits a suggestion cites, newest first.
MAX_CITES = 10

#: ``deploy_grace``: at least this many deploys of the service were followed by alerts...
GRACE_MIN_DEPLOYS = 3
#: ...which is at least this share of its deploys...
GRACE_MIN_DEPLOY_SHARE = Fraction(1, 2)
#: ...and at least this share of its non-critical alerts came right after a deploy.
GRACE_MIN_ALERT_SHARE = Fraction(1, 2)

#: ``silence``: fired on at least this many distinct days...
SILENCE_MIN_DAYS = 3
#: ...each weekday of the window on at least this many distinct dates (it recurs)...
SILENCE_MIN_WEEKS = 2
#: ...always starting within a time-of-day span this long (UTC).
SILENCE_MAX_SPAN_MINUTES = 120
#: Proposed windows are widened to this grid, in minutes.
SILENCE_STEP_MINUTES = 15

_MINUTES_PER_DAY = 24 * 60
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_KEY_LENGTH = 300  # the suggestions table's key column


# --------------------------------------------------------------------------- input


@dataclass(frozen=True, slots=True)
class AlertOccurrence:
    """One stored alert: one firing of a fingerprint, with how it ended."""

    fingerprint: str
    title: str
    service: str
    severity: Severity
    started_at: datetime
    ended_at: datetime | None = None
    incident_id: str = ""
    acknowledged: bool = False  # its incident was acknowledged


@dataclass(frozen=True, slots=True)
class DeployOccurrence:
    service: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Feedback:
    """People's verdicts on one incident."""

    noise: int = 0
    useful: int = 0


@dataclass(frozen=True, slots=True)
class Regrouping:
    """A person corrected the engine's grouping. ``merge``: incident ``incident_id``
    (of ``services``) was merged into ``other_id`` (then of ``other_services``): the
    engine kept apart what belonged together. ``split``: alerts of ``services`` were
    moved out of ``incident_id`` (keeping ``other_services``) into the new incident
    ``other_id``: the engine grouped what did not belong together."""

    kind: Literal["merge", "split"]
    at: datetime
    incident_id: str
    other_id: str
    services: frozenset[str]
    other_services: frozenset[str]

    def pairs(self) -> set[tuple[str, str]]:
        """The service pairs (sorted) it put together (merge) or apart (split); a
        service on both sides was not what the correction was about."""
        mine, others = self.services - self.other_services, self.other_services - self.services
        return {(min(a, b), max(a, b)) for a in mine for b in others}

    def cite(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "incident_id": self.incident_id,
            "other_id": self.other_id,
            "at": self.at.astimezone(UTC).isoformat(),
        }


@dataclass(frozen=True, slots=True)
class History:
    """A tenant's recent past, as of ``now``: alerts of the last
    :data:`SILENCE_HISTORY`, deploys, feedback by incident id, and the merges and
    splits people made."""

    now: datetime
    alerts: tuple[AlertOccurrence, ...] = ()
    deploys: tuple[DeployOccurrence, ...] = ()
    feedback: Mapping[str, Feedback] = field(default_factory=dict)
    regroupings: tuple[Regrouping, ...] = ()


@dataclass(frozen=True, slots=True)
class FingerprintStats:
    """What history says about one fingerprint.

    ``fired`` and ``quick_auto_resolved`` count the last :data:`HISTORY`; the rest
    covers the whole loaded history, so "never acknowledged" means never in it.
    ``title`` and ``service`` are the latest occurrence's; ``severity`` the worst seen.
    """

    fingerprint: str
    title: str
    service: str
    severity: Severity
    fired: int
    quick_auto_resolved: int
    acknowledged: int
    noise_feedback: int
    useful_feedback: int
    fired_at: tuple[datetime, ...]


# --------------------------------------------------------------------------- output


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One proposal. ``key`` identifies what it is about (a fingerprint, a service
    pair, a service), so the job refreshes it instead of proposing it twice."""

    kind: Kind
    key: str
    title: str
    evidence: dict[str, int]
    proposal: dict[str, Any]
    #: The merges and splits it learnt from (``Regrouping.cite``), newest first.
    cites: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Dependency:
    """A declared dependency: ``service`` depends on ``depends_on``."""

    service: str
    depends_on: str


@dataclass(frozen=True, slots=True)
class DependencyRemoval:
    """Take back the declaration that ``service`` depends on ``depends_on``."""

    service: str
    depends_on: str


# --------------------------------------------------------------------------- stats


def fingerprint_stats(history: History) -> dict[str, FingerprintStats]:
    recent_from = history.now - HISTORY
    loaded_from = history.now - SILENCE_HISTORY
    by_fingerprint: dict[str, list[AlertOccurrence]] = {}
    for occurrence in history.alerts:
        if occurrence.started_at >= loaded_from:
            by_fingerprint.setdefault(occurrence.fingerprint, []).append(occurrence)
    stats: dict[str, FingerprintStats] = {}
    for fingerprint, items in by_fingerprint.items():
        items.sort(key=lambda o: (o.started_at, o.title, o.service, o.incident_id))
        latest = items[-1]
        severity = latest.severity
        for item in items:
            severity = worst(severity, item.severity)
        recent = [o for o in items if o.started_at >= recent_from]
        incidents = sorted({o.incident_id for o in items if o.incident_id})
        verdicts = [history.feedback.get(i, Feedback()) for i in incidents]
        stats[fingerprint] = FingerprintStats(
            fingerprint=fingerprint,
            title=latest.title,
            service=latest.service,
            severity=severity,
            fired=len(recent),
            quick_auto_resolved=sum(_quick(o) for o in recent),
            acknowledged=sum(o.acknowledged for o in items),
            noise_feedback=sum(v.noise for v in verdicts),
            useful_feedback=sum(v.useful for v in verdicts),
            fired_at=tuple(o.started_at.astimezone(UTC) for o in items),
        )
    return stats


def _quick(occurrence: AlertOccurrence) -> bool:
    ended = occurrence.ended_at
    return (
        not occurrence.acknowledged
        and ended is not None
        and ended - occurrence.started_at <= QUICK_RESOLVE
    )


# --------------------------------------------------------------------------- suggest


def suggest(history: History, settings: TenantSettings, rules: Rules) -> list[Suggestion]:
    """Every suggestion the history supports, strongest first within each kind
    (kinds in the order of :data:`KINDS`)."""
    stats = fingerprint_stats(history)
    protected = {s.casefold() for s in settings.never_suppress_services}
    muteable = [s for s in stats.values() if _may_mute(s, protected)]
    silences = [hit for s in muteable if (hit := _silence(s, history.now)) is not None]
    scheduled = {hit.key for hit in silences}
    tunes = [
        hit
        for s in muteable
        if _key(s.fingerprint) not in scheduled and (hit := _tune(s)) is not None
    ]
    found = (
        tunes
        + silences
        + _links(history, settings, rules)
        + _unlinks(history, rules)
        + _deploy_graces(history, settings, protected)
    )
    return sorted(found, key=_order)


def _order(suggestion: Suggestion) -> tuple[int, int, str]:
    evidence = suggestion.evidence
    strength = {
        "tune": evidence.get("fired", 0),
        "silence": evidence.get("fired", 0),
        "link": evidence.get("together", 0) + evidence.get("merged_by_hand", 0),
        "unlink": evidence.get("split_by_hand", 0),
        "deploy_grace": evidence.get("alerts_after_deploys", 0),
    }[suggestion.kind]
    return KINDS.index(suggestion.kind), -strength, suggestion.key


def _may_mute(stats: FingerprintStats, protected: set[str]) -> bool:
    """Never propose hiding what was ever critical, what someone acknowledged or
    called useful, or a never-suppress service."""
    return (
        stats.severity is not Severity.CRITICAL
        and stats.acknowledged == 0
        and stats.useful_feedback == 0
        and stats.service.casefold() not in protected
    )


def mute_matchers(stats: FingerprintStats) -> str:
    """The fingerprint makes the mute exact; the service makes it readable."""
    matchers = [Matcher("fingerprint", "=", stats.fingerprint)]
    if stats.service:
        matchers.insert(0, Matcher("service", "=", stats.service))
    return format_matchers(matchers)


def _name(stats: FingerprintStats) -> str:
    return f"{stats.title!r}" + (f" on {stats.service}" if stats.service else "")


def _tune(stats: FingerprintStats) -> Suggestion | None:
    quick, fired = stats.quick_auto_resolved, stats.fired
    noisy_by_resolve = fired >= TUNE_MIN_FIRED and Fraction(quick, fired) >= TUNE_QUICK_SHARE
    noisy_by_feedback = (
        stats.noise_feedback >= TUNE_MIN_NOISE_FEEDBACK and fired >= TUNE_MIN_FIRED_WITH_FEEDBACK
    )
    if not (noisy_by_resolve or noisy_by_feedback):
        return None
    parts = [f"{_name(stats)} fired {fired} times this week"]
    if quick == fired:
        parts.append("always auto-resolved within 2 min")
    elif quick:
        parts.append(f"auto-resolved within 2 min {quick} times ({round(100 * quick / fired)} %)")
    if stats.noise_feedback:
        parts.append(f"marked noise {_times(stats.noise_feedback)}")
    parts.append("never acknowledged")
    return Suggestion(
        kind="tune",
        key=_key(stats.fingerprint),
        title=", ".join(parts),
        evidence={
            "fired": fired,
            "auto_resolved_quickly": quick,
            "acknowledged": 0,
            "noise_feedback": stats.noise_feedback,
        },
        proposal={
            "action": "mute",
            "matchers": mute_matchers(stats),
            "duration_days": TUNE_MUTE_DAYS,
            "advice": "fix it at the source: raise its threshold or require the condition "
            "to hold for a few minutes before it fires",
        },
    )


# --------------------------------------------------------------------------- silence


def _silence(stats: FingerprintStats, now: datetime) -> Suggestion | None:
    """All firings start in one short time-of-day span (UTC), on weekdays that recur,
    and it still happens (it fired within :data:`HISTORY`)."""
    span = _time_span(stats.fired_at)
    if span is None or max(stats.fired_at) < now - HISTORY:
        return None
    start, end = span  # minutes of the day; ``end`` may pass midnight (> 1440)
    window_days = [(moment - timedelta(minutes=start)) for moment in stats.fired_at]
    dates = {moment.date() for moment in window_days}
    weekdays = Counter(date.weekday() for date in dates)
    if len(dates) < SILENCE_MIN_DAYS or min(weekdays.values()) < SILENCE_MIN_WEEKS:
        return None
    days = "daily" if len(weekdays) == 7 else ",".join(_DAY_NAMES[d] for d in sorted(weekdays))
    schedule = f"{days} {_clock(start)}-{_clock(end)}"
    when = "every day" if days == "daily" else f"on {days}"
    return Suggestion(
        kind="silence",
        key=_key(stats.fingerprint),
        title=(
            f"{_name(stats)} fired {len(stats.fired_at)} times in "
            f"{SILENCE_HISTORY.days} days, always {when} between {_clock(start)} and "
            f"{_clock(end)} UTC, never acknowledged: a recurring silence for that window?"
        ),
        evidence={
            "fired": len(stats.fired_at),
            "days": len(dates),
            "weekdays": len(weekdays),
            "acknowledged": 0,
        },
        proposal={
            "action": "silence",
            "matchers": mute_matchers(stats),
            "schedule": schedule,
            "timezone": "UTC",
        },
    )


def _time_span(moments: Sequence[datetime]) -> tuple[int, int] | None:
    """The smallest time-of-day window, on the :data:`SILENCE_STEP_MINUTES` grid, that
    holds every moment's start: ``(start, end)`` in minutes, ``end`` past 1440 when it
    crosses midnight; None when the moments spread wider than allowed."""
    minutes = sorted({m.hour * 60 + m.minute for m in moments})
    if not minutes:
        return None
    # The arc that leaves out the largest gap between neighbours on the clock face.
    gaps = [
        ((minutes[(i + 1) % len(minutes)] - minutes[i]) % _MINUTES_PER_DAY, i)
        for i in range(len(minutes))
    ]
    largest, at = max(gaps, key=lambda g: (g[0], -g[1]))
    first = minutes[(at + 1) % len(minutes)]
    length = (_MINUTES_PER_DAY - largest) % _MINUTES_PER_DAY
    if length > SILENCE_MAX_SPAN_MINUTES:
        return None
    step = SILENCE_STEP_MINUTES
    start = first - first % step
    end = -(-(first + length + 1) // step) * step  # a firing at 02:15 needs [02:15, 02:16)
    return start, end


def _clock(minute: int) -> str:
    minute = minute % _MINUTES_PER_DAY if minute != _MINUTES_PER_DAY else minute
    return f"{minute // 60:02d}:{minute % 60:02d}"


# --------------------------------------------------------------------------- link


@dataclass(slots=True)
class _Burst:
    """Incidents whose starts chain within the correlation window of each other."""

    last_start: datetime
    first_alert: dict[str, datetime] = field(default_factory=dict)  # service ->
    #: Pairs in one incident; kept while the burst is within LINK_MAX_BURST_SERVICES.
    grouped: set[frozenset[str]] = field(default_factory=set)


def _links(history: History, settings: TenantSettings, rules: Rules) -> list[Suggestion]:
    window = timedelta(seconds=settings.correlation_window_seconds)
    together: Counter[tuple[str, str]] = Counter()
    leads: Counter[tuple[str, str]] = Counter()  # (a, b): a alerted before b
    bursts_of: Counter[str] = Counter()
    for burst in _bursts(history, window):
        services = sorted(burst.first_alert)
        bursts_of.update(services)
        if len(services) > LINK_MAX_BURST_SERVICES:
            continue
        for i, a in enumerate(services):
            for b in services[i + 1 :]:
                if frozenset((a, b)) in burst.grouped:
                    continue
                together[a, b] += 1
                if burst.first_alert[a] < burst.first_alert[b]:
                    leads[a, b] += 1
                elif burst.first_alert[b] < burst.first_alert[a]:
                    leads[b, a] += 1
    merged = _corrections(history, "merge")
    split = _corrections(history, "split")
    pairs = {
        pair
        for pair, count in together.items()
        if count >= LINK_MIN_TOGETHER
        and Fraction(count, min(bursts_of[pair[0]], bursts_of[pair[1]])) >= LINK_MIN_SHARE
    }
    pairs |= {pair for pair, items in merged.items() if len(items) >= LINK_MIN_MERGES}
    found: list[Suggestion] = []
    for a, b in sorted(pairs):
        if _declared(rules, a, b) or len(split.get((a, b), ())) >= UNLINK_MIN_SPLITS:
            continue  # linked already, or people keep saying they do not belong together
        found.append(_link(a, b, together[a, b], leads, bursts_of, merged.get((a, b), [])))
    return found


def _declared(rules: Rules, a: str, b: str) -> bool:
    return b in rules.dependencies.get(a, ()) or a in rules.dependencies.get(b, ())


def _corrections(history: History, kind: str) -> dict[tuple[str, str], list[Regrouping]]:
    """Merges (or splits) of the loaded history by the service pair they concern,
    newest first."""
    since = history.now - SILENCE_HISTORY
    found: dict[tuple[str, str], list[Regrouping]] = {}
    ordered = sorted(history.regroupings, key=lambda r: (r.at, r.incident_id), reverse=True)
    for item in ordered:
        if item.kind == kind and since <= item.at <= history.now:
            for pair in item.pairs():
                found.setdefault(pair, []).append(item)
    return found


def _cited(items: Sequence[Regrouping]) -> tuple[dict[str, str], ...]:
    return tuple(item.cite() for item in items[:MAX_CITES])


def _incidents(items: Sequence[Regrouping], joiner: str) -> str:
    shown = [f"{x.incident_id} {joiner} {x.other_id}" for x in items[:3]]
    return ", ".join(shown) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _bursts(history: History, window: timedelta) -> Iterable[_Burst]:
    """Incidents of the last :data:`HISTORY` by start, chained into bursts."""
    starts: dict[str, dict[str, datetime]] = {}  # incident -> service -> first alert
    since = history.now - HISTORY
    for o in history.alerts:
        if o.incident_id and o.service and o.started_at >= since:
            first = starts.setdefault(o.incident_id, {})
            first[o.service] = min(first.get(o.service, o.started_at), o.started_at)
    incidents = sorted(starts.items(), key=lambda item: (min(item[1].values()), item[0]))
    burst: _Burst | None = None
    for _, services in incidents:
        begins = min(services.values())
        if burst is None or begins - burst.last_start > window:
            if burst is not None:
                yield burst
            burst = _Burst(last_start=begins)
        burst.last_start = begins
        for service, at in services.items():
            burst.first_alert[service] = min(burst.first_alert.get(service, at), at)
        # Pairs are quadratic in an incident's services (a cascade over 200 services
        # is 19,900), and a burst over the cap is never read: skip them once past it.
        if len(burst.first_alert) <= LINK_MAX_BURST_SERVICES:
            names = sorted(services)
            burst.grouped.update(
                frozenset((x, y)) for i, x in enumerate(names) for y in names[i + 1 :]
            )
    if burst is not None:
        yield burst


def _link(
    a: str,
    b: str,
    count: int,
    leads: Counter[tuple[str, str]],
    bursts_of: Counter[str],
    merges: Sequence[Regrouping],
) -> Suggestion:
    """The service that usually alerts first is taken as upstream: a slow database
    alerts before the services that wait on it. Learnt from merges alone, the service
    of the incident people merged into is the guess."""
    if count and Fraction(leads[a, b], count) >= LINK_LEAD_SHARE:
        upstream, downstream, observed = a, b, True
    elif count and Fraction(leads[b, a], count) >= LINK_LEAD_SHARE:
        upstream, downstream, observed = b, a, True
    elif not count and sum(a in m.other_services for m in merges) * 2 > len(merges):
        upstream, downstream, observed = a, b, False
    else:
        upstream, downstream, observed = b, a, False
    direction = (
        f"{upstream} alerted first {_times(leads[upstream, downstream])}"
        if observed
        else "neither reliably alerts first: check the direction before accepting"
    )
    reasons = []
    if count:
        reasons.append(f"alerted together {_times(count)} this week")
    if merges:
        reasons.append(
            f"people merged their incidents by hand {_times(len(merges))} in "
            f"{SILENCE_HISTORY.days} days ({_incidents(merges, 'into')})"
        )
    evidence = {
        "together": count,
        "service_bursts": bursts_of[downstream],
        "depends_on_bursts": bursts_of[upstream],
        "service_first": leads[downstream, upstream],
        "depends_on_first": leads[upstream, downstream],
    }
    if merges:
        evidence["merged_by_hand"] = len(merges)
    return Suggestion(
        kind="link",
        key=_key(f"{a}|{b}"),
        title=(
            f"{downstream} and {upstream} {' and '.join(reasons)} "
            f"without a declared dependency ({direction}): declare that {downstream} "
            f"depends on {upstream}?"
        ),
        evidence=evidence,
        proposal={
            "action": "declare_dependency",
            "service": downstream,
            "depends_on": upstream,
            "direction": "observed" if observed else "guessed",
        },
        cites=_cited(merges),
    )


# --------------------------------------------------------------------------- unlink


def _unlinks(history: History, rules: Rules) -> list[Suggestion]:
    """Declared dependencies people keep undoing by splitting one service's alerts out
    of the other's incidents."""
    found: list[Suggestion] = []
    for (a, b), splits in sorted(_corrections(history, "split").items()):
        if len(splits) < UNLINK_MIN_SPLITS:
            continue
        for service, depends_on in ((a, b), (b, a)):
            if depends_on not in rules.dependencies.get(service, ()):
                continue
            found.append(
                Suggestion(
                    kind="unlink",
                    key=_key(f"{service}>{depends_on}"),
                    title=(
                        f"people split {service} and {depends_on} apart by hand "
                        f"{_times(len(splits))} in {SILENCE_HISTORY.days} days "
                        f"({_incidents(splits, 'split into')}) although {service} is declared "
                        f"to depend on {depends_on}: remove that dependency?"
                    ),
                    evidence={"split_by_hand": len(splits)},
                    proposal={
                        "action": "remove_dependency",
                        "service": service,
                        "depends_on": depends_on,
                    },
                    cites=_cited(splits),
                )
            )
    return found


# --------------------------------------------------------------------------- deploy grace


def _deploy_graces(
    history: History, settings: TenantSettings, protected: set[str]
) -> list[Suggestion]:
    lookback = timedelta(seconds=settings.deploy_lookback_seconds)
    since = history.now - HISTORY
    deploys: dict[str, list[datetime]] = {}
    for d in history.deploys:
        if d.started_at >= since and d.service.casefold() not in protected:
            deploys.setdefault(d.service, []).append(d.started_at)
    alerts: dict[str, list[AlertOccurrence]] = {}
    for o in history.alerts:
        if o.started_at >= since and o.service in deploys:
            alerts.setdefault(o.service, []).append(o)
    found: list[Suggestion] = []
    for service in sorted(deploys):
        found.extend(_grace(service, sorted(deploys[service]), alerts.get(service, []), lookback))
    return found


def _grace(
    service: str, deploys: list[datetime], alerts: list[AlertOccurrence], lookback: timedelta
) -> list[Suggestion]:
    """``deploys`` sorted; an alert follows the latest deploy before it, if that one
    started at most ``lookback`` earlier."""
    followed: set[datetime] = set()
    delays: list[timedelta] = []
    critical_after = 0
    ordinary = [o for o in alerts if o.severity is not Severity.CRITICAL]
    for o in alerts:
        index = bisect_left(deploys, o.started_at) - 1
        if index < 0 or o.started_at - deploys[index] > lookback:
            continue
        if o.severity is Severity.CRITICAL:
            critical_after += 1
            continue
        followed.add(deploys[index])
        delays.append(o.started_at - deploys[index])
    after = len(delays)
    if (
        len(followed) < GRACE_MIN_DEPLOYS
        or Fraction(len(followed), len(deploys)) < GRACE_MIN_DEPLOY_SHARE
        or Fraction(after, len(ordinary)) < GRACE_MIN_ALERT_SHARE
    ):
        return []
    longest = -(-int(max(delays).total_seconds()) // 60) * 60  # whole minutes, rounded up
    grace = min(max(60, longest), int(lookback.total_seconds()))
    minutes = grace // 60
    return [
        Suggestion(
            kind="deploy_grace",
            key=_key(service),
            title=(
                f"{service} alerted after {len(followed)} of its {len(deploys)} deploys this "
                f"week ({after} of its {len(ordinary)} non-critical alerts began within "
                f"{minutes} min of a deploy): give it a {minutes}-min deploy grace window?"
            ),
            evidence={
                "deploys": len(deploys),
                "deploys_followed_by_alerts": len(followed),
                "alerts": len(ordinary),
                "alerts_after_deploys": after,
                "critical_alerts_after_deploys": critical_after,
            },
            proposal={
                "action": "deploy_grace",
                "service": service,
                "grace_seconds": grace,
                "applies_to": "non-critical alerts",
            },
        )
    ]


# --------------------------------------------------------------------------- accepting


def rule_for(
    suggestion_id: str,
    rule_id: str,
    kind: str,
    title: str,
    proposal: Mapping[str, Any],
    now: datetime,
) -> Silence | Dependency | DependencyRemoval | None:
    """The rule an accepted suggestion becomes (or takes away); None when the engine
    has no such rule (``deploy_grace``: there is no grace window in the engine yet)."""
    if kind == "link":
        return Dependency(str(proposal["service"]), str(proposal["depends_on"]))
    if kind == "unlink":
        return DependencyRemoval(str(proposal["service"]), str(proposal["depends_on"]))
    if kind not in ("tune", "silence"):
        return None
    matchers = parse_matchers(str(proposal["matchers"]))
    if not matchers:  # an empty matcher list would match every alert
        raise ValueError(f"suggestion {suggestion_id} proposes no matchers")
    timed = kind == "tune"
    return Silence(
        id=rule_id,
        matchers=matchers,
        starts_at=now,
        ends_at=now + timedelta(days=int(proposal["duration_days"])) if timed else None,
        schedule="" if timed else str(proposal["schedule"]),
        author=f"suggestion:{suggestion_id}",
        comment=f"accepted suggestion {suggestion_id}: {title}",
    )


def accept_note(
    rule: Silence | Dependency | DependencyRemoval | None, settings: TenantSettings
) -> str:
    """What accepting did, in words, including what governance lets the rule do."""
    if isinstance(rule, DependencyRemoval):
        return (
            f"removed the dependency of {rule.service} on {rule.depends_on}: their alerts "
            "no longer join one incident through it"
        )
    if isinstance(rule, Dependency):
        return (
            f"declared that {rule.service} depends on {rule.depends_on}: alerts on the two "
            "services within the correlation window now join one incident"
        )
    if isinstance(rule, Silence):
        when = f"until {rule.ends_at.isoformat()}" if rule.ends_at else f"on {rule.schedule} UTC"
        what = f"created silence {rule.id} for {format_matchers(rule.matchers)} {when}"
        if settings.governance_mode == "strict":
            return (
                f"{what}. Governance is strict: it suppresses delivery of matching alerts "
                "(never critical alerts nor never-suppress services); they are still stored"
            )
        return (
            f"{what}. Governance is audit: it only logs 'would suppress' and every alert is "
            "still delivered; in strict mode it would suppress delivery"
        )
    return (
        "nothing was created: the engine has no deploy grace window yet. The deploy is "
        "already attached to these incidents as likely cause and adds to their noise score; "
        "to quiet the alerts, tune them at their source"
    )


# --------------------------------------------------------------------------- helpers


def _key(text: str) -> str:
    """Keys fit the table's column; an overlong one is replaced by its digest."""
    if len(text) <= _KEY_LENGTH:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
