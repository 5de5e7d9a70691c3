"""What-if replay: re-run a tenant's stored alerts through a proposed configuration and
compare the result with what actually happened. Nothing is written.

The stored alerts of a range are fed, in event-time order, through the same pure dedup
and engine the worker uses, in memory, with the tenant's configuration overridden by
the proposal. Repeats are folded in storage, so each stored alert is replayed as one
firing (plus its resolve, when it ended): pages count occurrences, as live delivery
does. The replay starts from a clean slate at ``since``: an incident already open then
is not carried in.

A proposal is JSON (the ``--rules`` file, or the body of ``POST /v1/replay``)::

    {"settings": {"correlation_window_seconds": 600, "governance_mode": "strict"},
     "dependencies": {"checkout": ["payments-db"]},
     "silences": [{"matchers": "{service=\\"batch\\"}", "schedule": "daily 02:00-03:00"}],
     "inhibitions": [{"source": "{severity=\\"critical\\"}", "target": "{severity=\\"low\\"}",
                      "equal": ["service"]}]}

``settings`` override single settings; ``dependencies`` (alias ``topology``),
``silences`` and ``inhibitions``, when present, replace the tenant's own.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dd0c_alert.correlation.dedup import AlertRecord, FingerprintState, fold
from dd0c_alert.correlation.engine import EngineState, correlate, event_time, shift
from dd0c_alert.correlation.model import (
    SETTING_BOUNDS,
    Decision,
    DeployRef,
    Features,
    IncidentState,
    InhibitRule,
    Rules,
    Silence,
    TenantSettings,
    settings_dict,
    settings_from,
)
from dd0c_alert.correlation.rules import parse_matchers, parse_schedule
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.domain.times import parse_time
from dd0c_alert.storage.ports import ReplaySource, Store

#: More alerts than this in one range is refused: narrow the range instead.
MAX_REPLAY_ALERTS = 200_000
#: One replay at a time per process. Each holds its range in memory (about 65 MiB of
#: Python objects for 20,000 alerts, so some 650 MB at the cap), under ``serve`` in the
#: process that admits webhooks: a few at once could take it down.
_ONE_AT_A_TIME = threading.BoundedSemaphore(1)


class ReplayBusy(Exception):
    """Another replay is running in this process."""


#: Lists in the report (incidents, grouping differences) stop at this many entries.
MAX_LISTED = 200
#: The engine's working set may hold this many incidents before old ones are parked.
PARK_ABOVE = 64
#: Notifications decided per call of the engine (which rescores what it touched).
BATCH = 500

_FEATURES = frozenset(f.name for f in fields(Features))
_SETTINGS = frozenset(f.name for f in fields(TenantSettings))


@dataclass(frozen=True, slots=True)
class Proposal:
    """A configuration to try. ``None`` parts keep the tenant's own."""

    settings: dict[str, Any] = field(default_factory=dict)
    dependencies: dict[str, frozenset[str]] | None = None
    silences: tuple[Silence, ...] | None = None
    inhibitions: tuple[InhibitRule, ...] | None = None


# --------------------------------------------------------------------------- parsing


def parse_proposal(doc: Any) -> Proposal:
    """Read a proposal; ``ValueError`` saying what is wrong where. Unknown keys are
    errors: a misspelt setting must not silently replay the current configuration."""
    if not isinstance(doc, Mapping):
        raise ValueError("a proposal is a JSON object")
    known = {"settings", "dependencies", "topology", "silences", "inhibitions"}
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ValueError(f"unknown keys {unknown}; expected some of {sorted(known)}")
    if "dependencies" in doc and "topology" in doc:
        raise ValueError("give 'dependencies' or its alias 'topology', not both")
    deps = doc.get("dependencies", doc.get("topology"))
    if isinstance(deps, Mapping) and isinstance(deps.get("dependencies"), Mapping):
        deps = deps["dependencies"]  # the body of PUT /v1/topology, as it is
    silences = doc.get("silences")
    inhibitions = doc.get("inhibitions")
    return Proposal(
        settings=_settings(doc.get("settings") or {}),
        dependencies=None if deps is None else _dependencies(deps),
        silences=None if silences is None else tuple(_silences(silences)),
        inhibitions=None if inhibitions is None else tuple(_inhibitions(inhibitions)),
    )


def _settings(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError("settings: expected an object")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        where = f"settings.{name}"
        if name not in _SETTINGS:
            raise ValueError(f"{where}: unknown setting; known: {sorted(_SETTINGS)}")
        if name in SETTING_BOUNDS:  # as PATCH /v1/settings would take it
            low, high = SETTING_BOUNDS[name]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(
                    f"{where}: expected a whole number from {low} to {high}, got {value!r}"
                )
        elif name == "governance_mode":
            if value not in ("audit", "strict"):
                raise ValueError(f"{where}: expected 'audit' or 'strict', got {value!r}")
        elif name == "auto_resolve":
            if not isinstance(value, bool):
                raise ValueError(f"{where}: expected true or false, got {value!r}")
        elif name == "never_suppress_services":
            _strings(value, where)
        else:  # features
            if not isinstance(value, Mapping) or not set(value) <= _FEATURES:
                raise ValueError(f"{where}: expected an object with keys from {sorted(_FEATURES)}")
            if not all(isinstance(v, bool) for v in value.values()):
                raise ValueError(f"{where}: every feature is true or false")
        out[name] = value
    return out


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: expected a list of strings")
    return value


def _dependencies(raw: Any) -> dict[str, frozenset[str]]:
    if not isinstance(raw, Mapping):
        raise ValueError("dependencies: expected an object of service -> [services it needs]")
    out: dict[str, frozenset[str]] = {}
    for service, ups in raw.items():
        needs = frozenset(_strings(ups, f"dependencies.{service}"))
        if service in needs:  # as PUT /v1/topology answers
            raise ValueError(f"dependencies.{service}: {service!r} cannot depend on itself")
        out[str(service)] = needs
    return out


def _object(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected an object")
    return raw


def _list(raw: Any, where: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ValueError(f"{where}: expected a list")
    return raw


def _time(raw: Any, where: str) -> datetime | None:
    if raw is None:
        return None
    return parse_time(str(raw), where)


def _silences(raw: Any) -> Iterable[Silence]:
    for n, item in enumerate(_list(raw, "silences")):
        where = f"silences[{n}]"
        obj = _object(item, where)
        try:
            matchers = parse_matchers(str(obj.get("matchers", "")))
            schedule = str(obj.get("schedule") or "")
            if schedule:
                parse_schedule(schedule)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not matchers:
            raise ValueError(f"{where}: a silence needs at least one matcher")
        yield Silence(
            id=str(obj.get("id") or f"proposed-silence-{n + 1}"),
            matchers=matchers,
            starts_at=_time(obj.get("starts_at"), f"{where}.starts_at"),
            ends_at=_time(obj.get("ends_at"), f"{where}.ends_at"),
            schedule=schedule,
            author=str(obj.get("author") or "what-if"),
            comment=str(obj.get("comment") or ""),
        )


def _inhibitions(raw: Any) -> Iterable[InhibitRule]:
    for n, item in enumerate(_list(raw, "inhibitions")):
        where = f"inhibitions[{n}]"
        obj = _object(item, where)
        try:
            source = parse_matchers(str(obj.get("source", "")))
            target = parse_matchers(str(obj.get("target", "")))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if not source or not target:
            raise ValueError(f"{where}: both 'source' and 'target' need matchers")
        yield InhibitRule(
            id=str(obj.get("id") or f"proposed-inhibition-{n + 1}"),
            source=source,
            target=target,
            equal=tuple(_strings(obj.get("equal", []), f"{where}.equal")),
        )


# --------------------------------------------------------------------------- simulation


@dataclass(slots=True)
class Replayed:
    """The proposed configuration's outcome: per stored alert id, the replay incident
    it ends up in and every decision taken on it; the replay's incidents."""

    incident_of: dict[str, str]
    decisions: dict[str, list[Decision]]
    incidents: dict[str, IncidentState]

    def paged(self, incident_id: str | None) -> bool:
        incident = self.incidents.get(incident_id or "")
        return incident is not None and incident.paged


def notifications(records: Sequence[AlertRecord]) -> list[CanonicalAlert]:
    """The notifications that produced the stored records, in event-time order: each
    record's firing, then its resolve when it ended. A record first seen resolved
    (``repeat_count`` 0: its firing was never received) is replayed as that resolve."""
    found: list[tuple[datetime, bool, int, CanonicalAlert]] = []
    for index, record in enumerate(records):
        alert = record.alert
        resolved = alert.status is AlertStatus.RESOLVED
        if not (resolved and record.repeat_count == 0):
            firing = replace(alert, status=AlertStatus.FIRING, ended_at=None)
            found.append((event_time(firing), False, index, firing))
        if resolved:
            end = replace(alert, received_at=max(record.last_seen_at, alert.received_at))
            found.append((event_time(end), True, index, end))
    found.sort(key=lambda item: item[:3])
    return [alert for *_, alert in found]


def simulate(
    tenant_id: str,
    records: Sequence[AlertRecord],
    deploys: Sequence[DeployRef],
    settings: TenantSettings,
    rules: Rules,
) -> Replayed:
    """Feed the records' notifications through dedup and the engine, deciding each as
    a live delivery of each in turn would."""
    return _Simulation(tenant_id, deploys, settings, rules).run(notifications(records))


class _Simulation:
    """The engine's state for one tenant, kept in memory between notifications.

    Incidents that can no longer gain alerts by time (their last alert lies more than
    three windows before the current event time) are parked out of the engine's
    working set, and brought back when a later notification of one of their alerts
    (a resolve) needs them: the replay stays linear in the number of alerts.
    """

    def __init__(
        self,
        tenant_id: str,
        deploys: Sequence[DeployRef],
        settings: TenantSettings,
        rules: Rules,
    ) -> None:
        self.state = EngineState(
            tenant_id=tenant_id, settings=settings, rules=rules, incidents={}, deploys=[*deploys]
        )
        self.parked: dict[str, IncidentState] = {}
        self.fingerprints: dict[str, FingerprintState] = {}
        self.firing: dict[str, CanonicalAlert] = {}  # alert id -> firing alert
        self.inhibits = bool(rules.inhibitions) and settings.features.inhibition
        self.horizon = timedelta(seconds=3 * settings.correlation_window_seconds + 1)
        self.count = 0

    def _new_id(self) -> str:
        self.count += 1
        return f"replay-{self.count}"

    def run(self, alerts: Iterable[CanonicalAlert]) -> Replayed:
        """Feed the notifications in batches that never hold two of one fingerprint
        (nor, with inhibition rules, anything after a resolve, which must leave the
        firing set first), so each batch decides as one notification at a time would
        while the engine rescores once per batch, not once per alert."""
        placed: dict[str, str] = {}
        decisions: dict[str, list[Decision]] = {}
        batch: list[CanonicalAlert] = []
        fingerprints: set[str] = set()
        for alert in alerts:
            if len(batch) >= BATCH or alert.fingerprint in fingerprints:
                self._feed(batch, placed, decisions)
                batch, fingerprints = [], set()
            batch.append(alert)
            fingerprints.add(alert.fingerprint)
            if self.inhibits and alert.status is AlertStatus.RESOLVED:
                self._feed(batch, placed, decisions)  # later alerts must see it ended
                batch, fingerprints = [], set()
        if batch:
            self._feed(batch, placed, decisions)
        incidents = {**self.parked, **self.state.incidents}
        merges = self.state.merges

        def final(incident_id: str) -> str:
            seen = 0
            while incident_id in merges and seen < len(merges):
                incident_id, seen = merges[incident_id], seen + 1
            return incident_id

        return Replayed(
            incident_of={alert_id: final(i) for alert_id, i in placed.items()},
            decisions=decisions,
            incidents={i: x for i, x in incidents.items() if x.merged_into is None},
        )

    def _feed(
        self,
        batch: list[CanonicalAlert],
        placed: dict[str, str],
        decisions: dict[str, list[Decision]],
    ) -> None:
        self._park(event_time(batch[0]))
        folds = [
            fold(self.fingerprints.setdefault(a.fingerprint, FingerprintState()), a) for a in batch
        ]
        for result in folds:
            if result.record.incident_id:
                self._unpark(result.record.incident_id)
        self.state.firing = [*self.firing.values()] if self.inhibits else []
        decided = correlate(self.state, folds, [], self._new_id)
        self.state.touched.clear()
        for alert, result, decision in zip(batch, folds, decided, strict=True):
            placed[alert.id] = result.record.incident_id
            decisions.setdefault(alert.id, []).append(decision)
            record = result.record
            if record.alert.status is AlertStatus.FIRING:
                self.firing[record.id] = record.alert
            else:
                self.firing.pop(record.id, None)

    def _park(self, now: datetime) -> None:
        incidents = self.state.incidents
        if len(incidents) < PARK_ABOVE:
            return
        cutoff = shift(now, -self.horizon)
        for incident_id in [i for i, x in incidents.items() if x.last_at < cutoff]:
            self.parked[incident_id] = incidents.pop(incident_id)

    def _unpark(self, incident_id: str) -> None:
        """Bring back an incident, and the incidents it was merged into."""
        current, seen = incident_id, set()
        while current and current not in seen:
            seen.add(current)
            incident = self.parked.pop(current, None)
            if incident is not None:
                self.state.incidents[current] = incident
            elif (incident := self.state.incidents.get(current)) is None:
                return
            current = self.state.merges.get(current) or incident.merged_into or ""


# --------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class _Fate:
    """What happened to one alert's delivery: whether it paged itself, whether the
    incident it is in paged at all (a joining alert rides on its incident's page),
    and the rule that suppressed it or would have."""

    paged: bool
    incident_paged: bool
    suppressed_by: str | None
    would_suppress: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "paged": self.paged,
            "incident_paged": self.incident_paged,
            "suppressed_by": self.suppressed_by,
            "would_suppress": self.would_suppress,
        }


def _fate(decisions: Iterable[Any], incident_paged: bool) -> _Fate:
    """``decisions`` are engine Decisions or stored ActualDecisions (same fields)."""
    items = list(decisions)
    return _Fate(
        paged=any(d.page for d in items),
        incident_paged=incident_paged,
        suppressed_by=next((d.suppressed_by for d in items if d.suppressed_by), None),
        would_suppress=next((d.would_suppress for d in items if d.would_suppress), None),
    )


def _side(
    incident_of: Mapping[str, str | None], fates: Mapping[str, _Fate], pages: int
) -> dict[str, Any]:
    suppressed = Counter(f.suppressed_by for f in fates.values() if f.suppressed_by)
    would = Counter(f.would_suppress for f in fates.values() if f.would_suppress)
    return {
        "incidents": len({i for i in incident_of.values() if i}),
        "pages": pages,
        "alerts_suppressed": sum(suppressed.values()),
        "suppressed_by": dict(sorted(suppressed.items())),
        "alerts_would_suppress": sum(would.values()),
        "would_suppress_by": dict(sorted(would.items())),
    }


def replay(
    store: Store,
    tenant_id: str,
    since: datetime,
    until: datetime | None = None,
    proposal: Proposal | None = None,
    limit: int = MAX_REPLAY_ALERTS,
    wait: float = 0.0,
) -> dict[str, Any]:
    """Replay ``[since, until)`` under ``proposal`` and report it beside what actually
    happened. Read-only. ``ValueError`` for an empty or too large range; ``ReplayBusy``
    when another replay of this process is still running after ``wait`` seconds."""
    gate = _ONE_AT_A_TIME
    if not (gate.acquire(timeout=wait) if wait > 0 else gate.acquire(blocking=False)):
        raise ReplayBusy
    try:
        return _replay(store, tenant_id, since, until, proposal, limit)
    finally:
        _ONE_AT_A_TIME.release()


def _replay(
    store: Store,
    tenant_id: str,
    since: datetime,
    until: datetime | None,
    proposal: Proposal | None,
    limit: int,
) -> dict[str, Any]:
    proposal = proposal or Proposal()
    until = until or datetime.now(UTC)
    if until <= since:
        raise ValueError("'until' must be later than 'since'")
    current, rules = store.tenant_config(tenant_id)
    settings = settings_from(current, proposal.settings)
    proposed = Rules(
        silences=rules.silences if proposal.silences is None else proposal.silences,
        inhibitions=rules.inhibitions if proposal.inhibitions is None else proposal.inhibitions,
        dependencies=rules.dependencies if proposal.dependencies is None else proposal.dependencies,
    )
    lookback = timedelta(seconds=settings.deploy_lookback_seconds)
    source = store.replay_source(tenant_id, since, until, limit, lookback)
    if source.truncated:
        raise ValueError(f"more than {limit} alerts started in that range: narrow it")
    replayed = simulate(tenant_id, source.records, source.deploys, settings, proposed)
    return _report(tenant_id, since, until, source, replayed, settings, proposed, proposal)


def _report(
    tenant_id: str,
    since: datetime,
    until: datetime,
    source: ReplaySource,
    replayed: Replayed,
    settings: TenantSettings,
    rules: Rules,
    proposal: Proposal,
) -> dict[str, Any]:
    records = source.records
    actual_of = {r.id: r.incident_id or None for r in records}
    by_alert: dict[str, list[Any]] = {}
    for d in source.decisions:
        by_alert.setdefault(d.alert_id, []).append(d)
    proposed_of = {r.id: replayed.incident_of.get(r.id) for r in records}
    actual = {
        r.id: _fate(
            by_alert.get(r.id, ()),
            source.incident_paged.get(r.incident_id, False),
        )
        for r in records
    }
    proposed = {
        r.id: _fate(replayed.decisions.get(r.id, ()), replayed.paged(proposed_of[r.id]))
        for r in records
    }
    changed = sorted(proposal.settings) + [
        name
        for name, part in (
            ("dependencies", proposal.dependencies),
            ("silences", proposal.silences),
            ("inhibitions", proposal.inhibitions),
        )
        if part is not None
    ]
    notes = [
        f"replayed from a clean slate at {_iso(since)}: incidents already open then are not "
        "carried in",
        "repeats are folded in storage: each stored alert is replayed as one firing and, when "
        "it ended, its resolve",
    ]
    uncorrelated = sum(1 for i in actual_of.values() if i is None)
    if uncorrelated:
        notes.append(
            f"{uncorrelated} stored alert(s) have no incident (stored before correlation "
            "ran): they count on the proposed side only"
        )
    return {
        "tenant_id": tenant_id,
        "since": _iso(since),
        "until": _iso(until),
        "alerts": len(records),
        "configuration": {
            "changed": changed,
            "settings": settings_dict(settings),
            "dependencies": {k: sorted(v) for k, v in sorted(rules.dependencies.items())},
            "silences": len(rules.silences),
            "inhibitions": len(rules.inhibitions),
        },
        "actual": _side(actual_of, actual, sum(d.page for d in source.decisions)),
        "proposed": _side(
            proposed_of,
            proposed,
            sum(d.page for ds in replayed.decisions.values() for d in ds),
        ),
        "critical_alerts_affected": _critical(records, actual, proposed, actual_of, proposed_of),
        "grouping": _grouping(records, actual_of, proposed_of),
        "incidents": _incidents(replayed, records, actual_of),
        "notes": notes,
    }


def _critical(
    records: Sequence[AlertRecord],
    actual: Mapping[str, _Fate],
    proposed: Mapping[str, _Fate],
    actual_of: Mapping[str, str | None],
    proposed_of: Mapping[str, str | None],
) -> list[dict[str, Any]]:
    """Critical alerts whose delivery would change: paged or not, in an incident
    that paged or not, suppressed or not."""
    found = []
    for r in records:
        if r.alert.severity is not Severity.CRITICAL:
            continue
        was, would = actual[r.id], proposed[r.id]
        if (was.paged, was.incident_paged, was.suppressed_by) != (
            would.paged,
            would.incident_paged,
            would.suppressed_by,
        ):
            found.append(
                {
                    "alert_id": r.id,
                    "title": r.alert.title,
                    "service": r.alert.service,
                    "started_at": _iso(r.alert.started_at),
                    "actual": {**was.as_dict(), "incident_id": actual_of[r.id]},
                    "proposed": {**would.as_dict(), "incident_id": proposed_of[r.id]},
                }
            )
    return found


def _grouping(
    records: Sequence[AlertRecord],
    actual_of: Mapping[str, str | None],
    proposed_of: Mapping[str, str | None],
) -> dict[str, Any]:
    """How the proposed incidents regroup the actual ones: ``merged`` when one proposed
    incident holds alerts of several actual ones, ``split`` when one actual incident's
    alerts spread over several proposed ones."""
    actual_members: dict[str, set[str]] = {}
    proposed_members: dict[str, set[str]] = {}
    for r in records:
        was, would = actual_of[r.id], proposed_of[r.id]
        if was is None or would is None:
            continue
        actual_members.setdefault(was, set()).add(r.id)
        proposed_members.setdefault(would, set()).add(r.id)
    differences: list[dict[str, Any]] = []
    for incident, members in sorted(proposed_members.items(), key=_by_number):
        sources = sorted({actual_of[a] or "" for a in members})
        if len(sources) > 1:
            differences.append(
                {
                    "change": "merged",
                    "proposed": incident,
                    "actual": sources,
                    "alerts": len(members),
                }
            )
    split = 0
    unchanged = 0
    for incident, members in sorted(actual_members.items()):
        targets = sorted({proposed_of[a] or "" for a in members}, key=_number)
        if len(targets) > 1:
            split += 1
            differences.append(
                {"change": "split", "actual": incident, "proposed": targets, "alerts": len(members)}
            )
        elif proposed_members[targets[0]] == members:
            unchanged += 1
    merged = sum(1 for d in differences if d["change"] == "merged")
    return {
        "unchanged": unchanged,
        "merged": merged,
        "split": split,
        "differences": differences[:MAX_LISTED],
        "truncated": len(differences) > MAX_LISTED,
    }


def _incidents(
    replayed: Replayed, records: Sequence[AlertRecord], actual_of: Mapping[str, str | None]
) -> list[dict[str, Any]]:
    """The proposed incidents, in order, each with the actual incidents its alerts
    are in."""
    sources: dict[str, set[str]] = {}
    for r in records:
        would, was = replayed.incident_of.get(r.id), actual_of[r.id]
        if would is not None and was is not None:
            sources.setdefault(would, set()).add(was)
    out = []
    for incident_id, x in sorted(replayed.incidents.items(), key=_by_number)[:MAX_LISTED]:
        out.append(
            {
                "id": incident_id,
                "title": x.title,
                "severity": x.severity.value,
                "services": sorted(x.services),
                "probable_root": x.probable_root,
                "alert_count": x.alert_count,
                "paged": x.paged,
                "status": x.status.value,
                "first_at": _iso(x.first_at),
                "last_at": _iso(x.last_at),
                "deploys": [d.id for d in x.deploys],
                "actual_incidents": sorted(sources.get(incident_id, ())),
            }
        )
    return out


def _number(replay_id: str) -> int:
    """``replay-12`` sorts after ``replay-9``."""
    return int(replay_id.rpartition("-")[2] or 0)


def _by_number(item: tuple[str, Any]) -> int:
    return _number(item[0])


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
