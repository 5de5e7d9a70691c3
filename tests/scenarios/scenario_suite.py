"""The scenario suite's data model: loading the files in ``data/``, building the webhook
bodies they describe, running them through the pure engine, and comparing incidents
with the expected ones. Used by test_scenarios.py and by bench/correlation.py.

A scenario file (JSON) has:

- ``description``, ``storm`` (counts towards the storm figures of the benchmark);
- ``settings`` / ``topology``: overrides and dependencies (service -> services it depends
  on) of the tenant ``main``; ``tenants``: other tenants, each with its own optional
  ``settings`` and ``topology``;
- ``steps``, in delivery order. A step is one webhook request of the ``custom`` provider:
  either one item, or ``{"send": [items…]}`` for several in one body. ``at`` is when it is
  delivered (seconds from the scenario's base time; default: the latest ``t`` of its
  items), ``tenant`` who it is for (default ``main``), ``idempotency_key`` an
  Idempotency-Key header, ``expect_status`` the answer expected (default 202).
- An item is a ``custom`` body object plus ``t``, its event time in seconds from the base
  time (``started_at`` of a firing alert, ``ended_at`` of a resolved one, ``started_at``
  of a deploy). Alerts have a ``name`` (sent as the label ``name``; also their
  ``fingerprint`` unless one is given, ``null`` meaning "let the provider compute it");
  a resolve's ``started_at`` is ``since`` if given, else the ``t`` of the latest firing
  item of that name before it. ``"kind": "deploy"`` makes the item a deploy.
- ``expected``: the incidents, each with ``alerts`` (names), ``root``, ``deploys``
  (versions), ``status``, ``pages`` (decisions that page) and ``tenant`` (default main).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dd0c_alert.correlation.dedup import FingerprintState, Fold, FoldResult, fold
from dd0c_alert.correlation.engine import EngineState, correlate, event_time, shift
from dd0c_alert.correlation.model import (
    DeployRef,
    IncidentState,
    Rules,
    TenantSettings,
    settings_from,
)
from dd0c_alert.domain.models import CanonicalAlert, DeployEvent
from dd0c_alert.providers import custom
from dd0c_alert.providers.base import Delivery

DATA = Path(__file__).parent / "data"
MAIN = "main"
_META = ("t", "name", "since", "tenant", "at")


@dataclass(frozen=True)
class Step:
    at: float
    tenant: str
    items: tuple[dict[str, Any], ...]
    idempotency_key: str | None
    expect_status: int

    def body(self, base: datetime) -> bytes:
        objects = [_body_object(item, base) for item in self.items]
        return json.dumps(objects[0] if len(objects) == 1 else objects).encode()


@dataclass(frozen=True)
class Expected:
    tenant: str
    alerts: frozenset[str]
    root: str
    deploys: tuple[str, ...]
    status: str
    pages: int


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    storm: bool
    tenants: dict[str, tuple[dict[str, Any], dict[str, list[str]]]]  # name -> settings, deps
    steps: tuple[Step, ...]
    expected: tuple[Expected, ...]

    @property
    def firing_notifications(self) -> int:
        """Firing alert notifications the engine receives (a naive pager pages each)."""
        return sum(
            1
            for step in self.steps
            if step.expect_status == 202
            for item in step.items
            if item.get("kind") != "deploy" and item.get("status", "firing") == "firing"
        )


@dataclass
class Incident:
    """An incident as found after a run, in the terms the scenario files use."""

    tenant: str
    alerts: list[str]  # one name per alert occurrence
    root: str
    deploys: tuple[str, ...]
    status: str
    pages: int

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.alerts)


def load(path: Path) -> Scenario:
    doc = json.loads(path.read_text())
    tenants = {MAIN: (doc.get("settings", {}), doc.get("topology", {}))}
    for name, extra in doc.get("tenants", {}).items():
        tenants[name] = (extra.get("settings", {}), extra.get("topology", {}))
    steps = tuple(_step(raw) for raw in doc["steps"])
    expected = tuple(
        Expected(
            tenant=e.get("tenant", MAIN),
            alerts=frozenset(e["alerts"]),
            root=e["root"],
            deploys=tuple(sorted(e["deploys"])),
            status=e["status"],
            pages=e["pages"],
        )
        for e in doc["expected"]
    )
    scenario = Scenario(
        name=path.stem,
        description=doc["description"],
        storm=doc.get("storm", False),
        tenants=tenants,
        steps=steps,
        expected=expected,
    )
    _check(scenario)
    _resolve_starts(scenario.steps)
    return scenario


def all_scenarios() -> list[Scenario]:
    return [load(path) for path in sorted(DATA.glob("*.json"))]


def _step(raw: dict[str, Any]) -> Step:
    items = tuple(raw["send"]) if "send" in raw else (raw,)
    return Step(
        at=float(raw.get("at", max(item["t"] for item in items))),
        tenant=raw.get("tenant", MAIN),
        items=items,
        idempotency_key=raw.get("idempotency_key"),
        expect_status=raw.get("expect_status", 202),
    )


def _check(scenario: Scenario) -> None:
    """A malformed file should fail loudly, not pass vacuously."""
    ats = [step.at for step in scenario.steps]
    assert ats == sorted(ats), f"{scenario.name}: steps must be in delivery order"
    sent = {
        (step.tenant, item["name"])
        for step in scenario.steps
        for item in step.items
        if item.get("kind") != "deploy"
    }
    listed = [(e.tenant, name) for e in scenario.expected for name in e.alerts]
    assert len(listed) == len(set(listed)), f"{scenario.name}: an alert is expected twice"
    assert set(listed) == sent, (
        f"{scenario.name}: expected incidents must list every alert sent exactly once; "
        f"missing {sorted(sent - set(listed))}, unknown {sorted(set(listed) - sent)}"
    )
    assert {s.tenant for s in scenario.steps} <= set(scenario.tenants), scenario.name


def _resolve_starts(scenario_steps: Iterable[Step]) -> None:
    """Give each resolve item the ``since`` of the firing item of its name before it."""
    fired: dict[str, float] = {}
    for step in scenario_steps:
        for item in step.items:
            if item.get("kind") == "deploy":
                continue
            if item.get("status", "firing") == "firing":
                fired[item["name"]] = item["t"]
            else:
                item.setdefault("since", fired.get(item["name"], item["t"]))


def _body_object(item: dict[str, Any], base: datetime) -> dict[str, Any]:
    body = {k: v for k, v in item.items() if k not in _META}
    at = (base + timedelta(seconds=item["t"])).isoformat()
    if item.get("kind") == "deploy":
        return {**body, "started_at": at}
    body["labels"] = {**item.get("labels", {}), "name": item["name"]}
    fingerprint = item.get("fingerprint", item["name"])
    if fingerprint is None:
        body.pop("fingerprint", None)
    else:
        body["fingerprint"] = fingerprint
    if item.get("status", "firing") == "resolved":
        since = item.get("since", item["t"])
        body["started_at"] = (base + timedelta(seconds=since)).isoformat()
        body["ended_at"] = at
    else:
        body["started_at"] = at
    return body


# --- comparing ---------------------------------------------------------------------


def mismatches(scenario: Scenario, actual: list[Incident]) -> list[str]:
    """What differs between the expected and the actual incidents, in words."""
    problems: list[str] = []
    found = {(i.tenant, i.names): i for i in actual}
    for expected in scenario.expected:
        got = found.get((expected.tenant, expected.alerts))
        if got is None:
            problems.append(f"no incident groups exactly {_names(expected.alerts)}")
            continue
        for what, want, have in (
            ("root", expected.root, got.root),
            ("deploys", expected.deploys, got.deploys),
            ("status", expected.status, got.status),
            ("pages", expected.pages, got.pages),
        ):
            if want != have:
                problems.append(f"{_names(expected.alerts)}: {what} {have!r}, expected {want!r}")
    wanted = {(e.tenant, e.alerts) for e in scenario.expected}
    problems += [
        f"unexpected incident {_names(i.names)} ({i.tenant})"
        for i in actual
        if (i.tenant, i.names) not in wanted
    ]
    return problems


def report(scenario: Scenario, actual: list[Incident]) -> str:
    """Expected and actual incidents side by side, for a failure message."""
    lines = [f"scenario {scenario.name}: {scenario.description}", "", "expected:"]
    lines += [
        _line(e.tenant, sorted(e.alerts), e.root, e.deploys, e.status, e.pages)
        for e in scenario.expected
    ]
    lines.append("actual:")
    lines += [
        _line(i.tenant, sorted(i.names), i.root, i.deploys, i.status, i.pages)
        for i in sorted(actual, key=lambda i: (i.tenant, sorted(i.names)))
    ]
    lines += ["", "differences:"] + [f"  - {p}" for p in mismatches(scenario, actual)]
    return "\n".join(lines)


def _line(
    tenant: str, names: list[str], root: str, deploys: tuple[str, ...], status: str, pages: int
) -> str:
    return (
        f"  [{tenant}] {', '.join(names)}\n"
        f"      root={root} deploys={list(deploys)} status={status} pages={pages}"
    )


def _names(names: Iterable[str]) -> str:
    return "{" + ", ".join(sorted(names)) + "}"


@dataclass(frozen=True)
class Quality:
    """How a run did against the expected incidents. Pairs are pairs of alert
    occurrences: ``together`` both grouped by the run and expected together,
    ``predicted`` grouped by the run, ``wanted`` expected together. Qualities add up,
    pooling pairs (not averaging ratios)."""

    alerts: int = 0  # firing notifications received
    alert_records: int = 0  # alert occurrences stored (repeats folded)
    incidents: int = 0
    pages: int = 0
    together: int = 0
    predicted: int = 0
    wanted: int = 0

    @property
    def noise_reduction(self) -> float:
        return 1 - self.pages / self.alerts if self.alerts else 0.0

    @property
    def precision(self) -> float:
        return self.together / self.predicted if self.predicted else 1.0

    @property
    def recall(self) -> float:
        return self.together / self.wanted if self.wanted else 1.0

    def __add__(self, other: Quality) -> Quality:
        return Quality(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(Quality)))


def quality(scenario: Scenario, actual: list[Incident]) -> Quality:
    """Grouping quality: a pair of alerts counts as grouped when they share an
    incident, and is right when the expected incidents group them too."""
    expected_of = {
        (e.tenant, name): n for n, e in enumerate(scenario.expected) for name in e.alerts
    }
    cells: Counter[tuple[int, int]] = Counter()
    for n, incident in enumerate(actual):
        for name in incident.alerts:
            cells[(n, expected_of[(incident.tenant, name)])] += 1
    actual_sizes: Counter[int] = Counter()
    expected_sizes: Counter[int] = Counter()
    for (a, e), count in cells.items():
        actual_sizes[a] += count
        expected_sizes[e] += count
    return Quality(
        alerts=scenario.firing_notifications,
        alert_records=sum(len(i.alerts) for i in actual),
        incidents=len(actual),
        pages=sum(i.pages for i in actual),
        together=sum(_pairs(c) for c in cells.values()),
        predicted=sum(_pairs(c) for c in actual_sizes.values()),
        wanted=sum(_pairs(c) for c in expected_sizes.values()),
    )


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


# --- the pure engine, driven as the worker drives it -------------------------------


@dataclass
class _Tenant:
    settings: TenantSettings
    rules: Rules
    incidents: dict[str, IncidentState] = field(default_factory=dict)
    deploys: dict[str, DeployRef] = field(default_factory=dict)
    merges: dict[str, str] = field(default_factory=dict)
    #: What the alert rows hold between batches: fingerprint -> alert id -> (start, end).
    rows: dict[str, dict[str, tuple[datetime, datetime | None]]] = field(default_factory=dict)


class MemoryRun:
    """Delivers requests to the pure engine as the worker processes them: the same
    provider normalisation, fold by fingerprint, event-time order within a batch, and
    per batch the state the worker would load from the database (incidents, deploys and
    state changes near the batch, merges followed)."""

    def __init__(
        self, tenants: dict[str, tuple[dict[str, Any], dict[str, list[str]]]], base: datetime
    ) -> None:
        self.base = base
        self.tenants = {
            name: _Tenant(
                settings=settings_from(TenantSettings(), settings),
                rules=Rules(dependencies={s: frozenset(d) for s, d in deps.items()}),
            )
            for name, (settings, deps) in tenants.items()
        }
        #: Seconds spent per phase: "fold" and "correlate" are the engine; "load" and
        #: "save" stand in for the database.
        self.timings: Counter[str] = Counter()
        self.fingerprints: dict[tuple[str, str], FingerprintState] = {}
        self.names: dict[str, tuple[str, str]] = {}  # alert id -> tenant, name
        self.incident_of: dict[str, str] = {}  # alert id -> incident id
        self.pages: Counter[tuple[str, str]] = Counter()  # (tenant, incident id) -> pages
        self._ids = (f"X{n:08d}" for n in itertools.count())
        self._keys: set[str] = set()

    def new_id(self) -> str:
        return next(self._ids)

    def deliver(self, step: Step) -> None:
        if step.idempotency_key is not None:
            if step.idempotency_key in self._keys:
                return  # answered "duplicate", never processed
            self._keys.add(step.idempotency_key)
        delivery = Delivery(
            tenant_id=step.tenant,
            provider="custom",
            event_id=self.new_id(),
            received_at=self.base + timedelta(seconds=step.at),
            headers={},
        )
        alerts: list[CanonicalAlert] = []
        deploys: list[DeployRef] = []
        for record in custom.normalise(json.loads(step.body(self.base)), delivery):
            if isinstance(record, DeployEvent):
                deploys.append(_deploy_ref(record))
            else:
                record.id = self.new_id()
                alerts.append(record)
        self.batch(step.tenant, alerts, deploys)

    def batch(self, tenant_id: str, alerts: list[CanonicalAlert], deploys: list[DeployRef]) -> None:
        tenant = self.tenants[tenant_id]
        started = time.perf_counter()
        folds: list[FoldResult] = []
        for alert in sorted(alerts, key=event_time):
            state = self.fingerprints.setdefault((tenant_id, alert.fingerprint), FingerprintState())
            result = fold(state, alert)
            if result.record.incident_id:
                result.record.incident_id = _final(tenant.merges, result.record.incident_id)
            folds.append(result)
            if result.fold is Fold.NEW:
                self.names[alert.id] = (tenant_id, alert.labels.get("name", alert.title))
        folded = time.perf_counter()
        for deploy in deploys:
            tenant.deploys[deploy.id] = deploy
        state = self._load(tenant_id, tenant, folds, deploys)
        loaded = time.perf_counter()
        decisions = correlate(state, folds, deploys, self.new_id)
        correlated = time.perf_counter()
        tenant.incidents.update(state.incidents)
        tenant.merges.update(state.merges)
        for result, decision in zip(folds, decisions, strict=True):
            self.incident_of[result.record.id] = decision.incident_id
            if decision.page:
                self.pages[(tenant_id, decision.incident_id)] += 1
            alert = result.record.alert
            tenant.rows.setdefault(alert.fingerprint, {})[alert.id] = (
                alert.started_at,
                alert.ended_at,
            )
        self.timings["fold"] += folded - started
        self.timings["load"] += loaded - folded
        self.timings["correlate"] += correlated - loaded
        self.timings["save"] += time.perf_counter() - correlated

    def _load(
        self, tenant_id: str, tenant: _Tenant, folds: list[FoldResult], deploys: list[DeployRef]
    ) -> EngineState:
        """As storage.correlation_sql.load_state does it."""
        settings = tenant.settings
        times = [event_time(f.alert) for f in folds] + [d.started_at for d in deploys]
        window = timedelta(seconds=settings.correlation_window_seconds)
        lookback = timedelta(seconds=settings.deploy_lookback_seconds)
        flap = timedelta(seconds=settings.flap_window_seconds)
        low, high = min(times), max(times)
        known = {f.record.incident_id for f in folds if f.record.incident_id}
        incidents = {
            k: v
            for k, v in tenant.incidents.items()
            if v.merged_into is None
            and (
                k in known
                or (
                    v.last_at >= shift(low, -3 * window)
                    and v.first_at <= shift(high, 3 * window + lookback)
                )
            )
        }
        transitions: dict[str, list[datetime]] = {}
        for fingerprint in {f.record.alert.fingerprint for f in folds}:
            for start, end in tenant.rows.get(fingerprint, {}).values():
                for moment in (start, end):
                    if moment is not None and shift(low, -flap) <= moment <= shift(high, flap):
                        transitions.setdefault(fingerprint, []).append(moment)
        return EngineState(
            tenant_id=tenant_id,
            settings=settings,
            rules=tenant.rules,
            incidents=incidents,
            deploys=[
                d for d in tenant.deploys.values() if shift(low, -lookback) <= d.started_at <= high
            ],
            transitions={fp: sorted(ts) for fp, ts in transitions.items()},
        )

    def incidents(self) -> list[Incident]:
        found: dict[tuple[str, str], Incident] = {}
        for tenant_id, tenant in self.tenants.items():
            for incident in tenant.incidents.values():
                if incident.merged_into is None:
                    found[(tenant_id, incident.id)] = Incident(
                        tenant=tenant_id,
                        alerts=[],
                        root=incident.probable_root,
                        deploys=tuple(sorted(d.version for d in incident.deploys)),
                        status=str(incident.status),
                        pages=0,
                    )
        for alert_id, (tenant_id, name) in self.names.items():
            merges = self.tenants[tenant_id].merges
            found[(tenant_id, _final(merges, self.incident_of[alert_id]))].alerts.append(name)
        for (tenant_id, incident_id), count in self.pages.items():
            found[(tenant_id, _final(self.tenants[tenant_id].merges, incident_id))].pages += count
        return list(found.values())


def run_in_memory(scenario: Scenario, base: datetime | None = None) -> list[Incident]:
    run = MemoryRun(scenario.tenants, base or datetime(2026, 11, 27, 3, 0, tzinfo=UTC))
    for step in scenario.steps:
        run.deliver(step)
    return run.incidents()


def _final(merges: dict[str, str], incident_id: str) -> str:
    while incident_id in merges:
        incident_id = merges[incident_id]
    return incident_id


def _deploy_ref(deploy: DeployEvent) -> DeployRef:
    return DeployRef(
        id=f"{deploy.source}:{deploy.source_ref}",
        service=deploy.service,
        started_at=deploy.started_at,
        version=deploy.version,
        author=deploy.author,
        title=deploy.title,
        url=deploy.url,
        environment=deploy.environment,
    )
