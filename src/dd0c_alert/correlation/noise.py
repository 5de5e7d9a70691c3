"""How noisy an incident looks, 0 to 100, with every reason listed (design §6.8).

The score is advice for the humans tuning their alerts, never a reason to drop one: it
suppresses nothing by itself. Each reason starts with its signed contribution, and the
contributions always add up to the score, so a reader can check the arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import timedelta

from dd0c_alert.domain.models import Severity

from .model import DeployRef, FingerprintHistory, IncidentState, TenantSettings

DEPLOY = 25
FEATURE_FLAG = 5
FLAPPING = 30
QUICK_AUTO_RESOLVE = 20
NOISE_FEEDBACK = 20
USEFUL_FEEDBACK = -20
NEVER_ACKNOWLEDGED = 10
SEVERITY = {Severity.INFO: 20, Severity.LOW: 10, Severity.MEDIUM: 5}
#: Critical incidents and never-suppress services are never scored above this.
CAP = 50
#: History only counts for fingerprints that fired at least this often in 7 days.
MIN_FIRED = 5

_FLAG = re.compile(
    r"(?<![a-z0-9])(?:feature[-_ ]?flags?|flag(?:s|ged|ging)?|toggles?|toggled|ff_[a-z0-9_]*)"
    r"(?![a-z0-9])",
    re.IGNORECASE,
)

Reason = tuple[int, str]
#: The incident's fingerprints that have history, with it, ordered by fingerprint.
Histories = list[tuple[str, FingerprintHistory]]


def noise_score(
    incident: IncidentState,
    history: Mapping[str, FingerprintHistory],
    settings: TenantSettings,
) -> tuple[int, list[str]]:
    """Score ``incident`` from its own signals and its fingerprints' 7-day history.

    =========================================================  ============
    signal                                                     points
    =========================================================  ============
    a deploy is attached (once)                                +25
    an attached deploy's title mentions a feature flag         +5
    some fingerprint is flapping (once)                        +30
    a fingerprint fired >= 5 times in 7 days, auto-resolving   +20
    within 2 min at least 80 % of the time (once)
    earlier "noise" feedback on its fingerprints               +20
    earlier "useful" feedback on its fingerprints              -20
    a fingerprint fired >= 5 times and was never acknowledged  +10
    severity info / low / medium                               +20 / +10 / +5
    =========================================================  ============

    The sum is clamped to 0..100, then capped at 50 when the incident is critical or
    touches a never-suppress service. Clamp and cap appear as reasons with their own
    (negative or positive) contribution. Reasons come in the order of the table.
    """
    mine = _histories(incident, history)
    reasons: list[Reason] = []
    for signal in _SIGNALS:
        reasons.extend(signal(incident, mine, settings))
    raw = sum(points for points, _ in reasons)
    if raw > 100:
        reasons.append((100 - raw, "score is at most 100"))
    elif raw < 0:
        reasons.append((-raw, "score is at least 0"))
    score = min(max(raw, 0), 100)
    why = _cap_reason(incident, settings)
    if why is not None and score > CAP:
        reasons.append((CAP - score, f"capped at {CAP}: {why}"))
        score = CAP
    return score, [f"{points:+d} {text}" for points, text in reasons]


# --------------------------------------------------------------------------- signals


def _deploy(incident: IncidentState, _mine: Histories, _s: TenantSettings) -> list[Reason]:
    """A deploy shortly before is the classic cause of a burst of transient alerts.
    Names the deploy nearest before the incident began."""
    if not incident.deploys:
        return []
    before = [d for d in incident.deploys if d.started_at <= incident.first_at]
    deploy = max(before, key=lambda d: d.started_at) if before else incident.deploys[0]
    gap = incident.first_at - deploy.started_at
    when = f"{_span(gap)} before" if gap >= timedelta(0) else f"{_span(-gap)} after it began"
    text = f"{_deploy_name(deploy)} started {when}"
    if len(incident.deploys) > 1:
        text += f" ({len(incident.deploys) - 1} more deploy(s) attached)"
    return [(DEPLOY, text)]


def _feature_flag(incident: IncidentState, _mine: Histories, _s: TenantSettings) -> list[Reason]:
    """A flag flip changes behaviour without a real release: often a short blip."""
    for deploy in incident.deploys:
        if _FLAG.search(deploy.title):
            return [
                (
                    FEATURE_FLAG,
                    f"{_deploy_name(deploy)} title mentions a feature flag: {deploy.title!r}",
                )
            ]
    return []


def _flapping(incident: IncidentState, _mine: Histories, settings: TenantSettings) -> list[Reason]:
    if not incident.flapping:
        return []
    count = len(incident.flapping)
    what = "1 fingerprint is" if count == 1 else f"{count} fingerprints are"
    window = _span(timedelta(seconds=settings.flap_window_seconds))
    rule = f"≥ {settings.flap_threshold} state changes in {window}"
    return [(FLAPPING, f"{what} flapping ({rule})")]


def _quick_auto_resolve(
    incident: IncidentState, mine: Histories, _s: TenantSettings
) -> list[Reason]:
    """Alerts that fire often and go away on their own within minutes rarely need a
    human."""
    found = [
        (fp, h)
        for fp, h in mine
        if h.fired >= MIN_FIRED and 5 * h.quick_auto_resolved >= 4 * h.fired
    ]
    if not found:
        return []
    fp, h = max(found, key=lambda item: item[1].fired)
    share = round(100 * h.quick_auto_resolved / h.fired)
    text = (
        f"fingerprint {fp} fired {h.fired} times in 7 days and auto-resolved within 2 min "
        f"{h.quick_auto_resolved} times ({share}%)" + _more(len(found))
    )
    return [(QUICK_AUTO_RESOLVE, text)]


def _feedback(incident: IncidentState, mine: Histories, _s: TenantSettings) -> list[Reason]:
    """What people said about these alerts before weighs both ways."""
    noise = sum(h.noise_feedback for _, h in mine)
    useful = sum(h.useful_feedback for _, h in mine)
    reasons: list[Reason] = []
    if noise:
        reasons.append((NOISE_FEEDBACK, f"marked noise {_times(noise)} before"))
    if useful:
        reasons.append((USEFUL_FEEDBACK, f"marked useful {_times(useful)} before"))
    return reasons


def _never_acknowledged(
    incident: IncidentState, mine: Histories, _s: TenantSettings
) -> list[Reason]:
    found = [(fp, h) for fp, h in mine if h.fired >= MIN_FIRED and h.acknowledged == 0]
    if not found:
        return []
    fp, h = max(found, key=lambda item: item[1].fired)
    text = f"fingerprint {fp} fired {h.fired} times in 7 days, never acknowledged" + _more(
        len(found)
    )
    return [(NEVER_ACKNOWLEDGED, text)]


def _severity(incident: IncidentState, _mine: Histories, _s: TenantSettings) -> list[Reason]:
    points = SEVERITY.get(incident.severity, 0)
    return [(points, f"severity {incident.severity.value}")] if points else []


_Signal = Callable[[IncidentState, Histories, TenantSettings], list[Reason]]
_SIGNALS: tuple[_Signal, ...] = (
    _deploy,
    _feature_flag,
    _flapping,
    _quick_auto_resolve,
    _feedback,
    _never_acknowledged,
    _severity,
)


# --------------------------------------------------------------------------- helpers


def _cap_reason(incident: IncidentState, settings: TenantSettings) -> str | None:
    """Why the score may not exceed the cap, if it may not. Service names compare
    case-insensitively, erring towards the cap."""
    why: list[str] = []
    if incident.severity is Severity.CRITICAL:
        why.append("critical severity")
    protected = {s.casefold() for s in settings.never_suppress_services}
    listed = sorted(s for s in incident.services if s.casefold() in protected)
    if listed:
        why.append(f"{', '.join(listed)} on the never-suppress list")
    return " and ".join(why) or None


def _histories(incident: IncidentState, history: Mapping[str, FingerprintHistory]) -> Histories:
    """The incident's fingerprints that have history, in a fixed order. Found from the
    smaller side, once per score: the worker's ``history`` holds the whole batch's
    fingerprints, and sorting all of it three times for each incident a batch touched
    was a twentieth of a batch of repeats spread over 200 services."""
    fingerprints = incident.fingerprints
    if len(fingerprints) < len(history):
        found = [fp for fp in fingerprints if fp in history]
    else:
        found = [fp for fp in history if fp in fingerprints]
    return [(fp, history[fp]) for fp in sorted(found)]


def _deploy_name(deploy: DeployRef) -> str:
    name = f"deploy {deploy.version or deploy.id} of {deploy.service}"
    return name + (f" (by {deploy.author})" if deploy.author else "")


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _more(count: int) -> str:
    return f" (and {count - 1} more fingerprint(s))" if count > 1 else ""
