"""The correlation engine, rule by rule, and its properties over random streams."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.correlation.dedup import FingerprintState, Fold, fold
from dd0c_alert.correlation.engine import EngineState, absorb, correlate, event_time
from dd0c_alert.correlation.model import (
    DeployRef,
    Features,
    IncidentState,
    IncidentStatus,
    Matcher,
    Outcome,
    Rules,
    Silence,
    TenantSettings,
)
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity

T0 = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)
_ids = itertools.count()


def new_id() -> str:
    return f"I{next(_ids):06d}"


def alert(
    minute: float,
    service: str = "db",
    *,
    fp: str | None = None,
    status: AlertStatus = AlertStatus.FIRING,
    severity: Severity = Severity.HIGH,
    tenant: str = "t1",
    delay_minutes: float = 0,
) -> CanonicalAlert:
    at = T0 + timedelta(minutes=minute)
    return CanonicalAlert(
        id=f"A{next(_ids):06d}",
        tenant_id=tenant,
        source="custom",
        source_ref="x",
        fingerprint=fp or f"{service}-{minute}",
        status=status,
        severity=severity,
        title=f"{service} is unwell",
        service=service,
        started_at=at,
        ended_at=at if status is AlertStatus.RESOLVED else None,
        received_at=at + timedelta(minutes=delay_minutes),
    )


class Engine:
    """Feeds alerts through dedup and correlation as the worker does, batch by batch,
    keeping state between batches like the database would."""

    def __init__(self, settings: TenantSettings | None = None, rules: Rules | None = None) -> None:
        self.fingerprints: dict[tuple[str, str], FingerprintState] = {}
        self.states: dict[str, EngineState] = {}
        self.settings = settings or TenantSettings()
        self.rules = rules or Rules()
        self.decisions: list = []
        self.alert_incident: dict[str, str] = {}

    def state(self, tenant: str) -> EngineState:
        if tenant not in self.states:
            self.states[tenant] = EngineState(
                tenant_id=tenant, settings=self.settings, rules=self.rules, incidents={}
            )
        return self.states[tenant]

    def send(self, *alerts: CanonicalAlert, deploys: list[DeployRef] | None = None) -> list:
        batch = []
        for tenant in sorted({a.tenant_id for a in alerts} or {"t1"}):
            folds = [
                fold(
                    self.fingerprints.setdefault((a.tenant_id, a.fingerprint), FingerprintState()),
                    a,
                )
                for a in sorted((a for a in alerts if a.tenant_id == tenant), key=event_time)
            ]
            state = self.state(tenant)
            state.touched.clear()
            decided = correlate(state, folds, deploys or [], new_id)
            for result, decision in zip(folds, decided, strict=True):
                self.alert_incident[result.record.id] = decision.incident_id
            batch += decided
        self.decisions += batch
        return batch

    def incidents(self, tenant: str = "t1") -> list:
        return [i for i in self.state(tenant).incidents.values() if i.merged_into is None]

    def groups(self) -> set[frozenset[str]]:
        """Which alerts ended up together (following merges)."""
        live: dict[str, set[str]] = {}
        for alert_id, incident_id in self.alert_incident.items():
            final = incident_id
            for state in self.states.values():
                while final in state.merges:
                    final = state.merges[final]
            live.setdefault(final, set()).add(alert_id)
        return {frozenset(v) for v in live.values()}


def test_three_alerts_for_one_service_within_five_minutes_are_one_incident() -> None:
    engine = Engine()
    decisions = engine.send(alert(0), alert(2), alert(4))
    [incident] = engine.incidents()
    assert incident.alert_count == 3
    assert [d.outcome for d in decisions] == [Outcome.NEW_INCIDENT, Outcome.JOINED, Outcome.JOINED]
    assert [d.page for d in decisions] == [True, False, False]
    assert "same service db" in decisions[1].reasons[-1]


def test_the_window_slides_with_each_joining_alert_up_to_the_max_span() -> None:
    engine = Engine(TenantSettings(max_incident_span_seconds=30 * 60))
    engine.send(*(alert(m) for m in range(0, 40, 4)))
    spans = sorted(i.alert_count for i in engine.incidents())
    assert spans == [2, 8]  # 0..28 fits in 30 min; 32 would stretch it past the cap


def test_different_services_without_topology_are_separate() -> None:
    engine = Engine()
    engine.send(alert(0, "db"), alert(1, "checkout"))
    assert len(engine.incidents()) == 2


def test_topology_groups_a_cascade_and_names_the_upstream_root() -> None:
    deps = {"checkout": frozenset({"payments"}), "payments": frozenset({"payments-db"})}
    engine = Engine(rules=Rules(dependencies=deps))
    decisions = engine.send(alert(0, "checkout"), alert(1, "payments"), alert(2, "payments-db"))
    [incident] = engine.incidents()
    assert incident.services == {"checkout", "payments", "payments-db"}
    assert incident.probable_root == "payments-db"
    assert "connected to" in decisions[1].reasons[-1]


def test_topology_off_keeps_services_apart_and_says_so() -> None:
    deps = {"checkout": frozenset({"payments-db"})}
    off = TenantSettings(features=Features(topology=False))
    engine = Engine(off, Rules(dependencies=deps))
    decisions = engine.send(alert(0, "checkout"), alert(1, "payments-db"))
    assert len(engine.incidents()) == 2
    assert "topology off" in decisions[0].reasons[0]


def test_late_alert_within_twice_the_window_joins_without_paging() -> None:
    engine = Engine()
    engine.send(alert(10), alert(12))
    [late] = engine.send(alert(2, delay_minutes=20))  # 8 min before the incident began
    assert late.outcome is Outcome.LATE_JOINED and not late.page
    [incident] = engine.incidents()
    assert incident.first_at == T0 + timedelta(minutes=2)


def test_late_alert_between_two_and_three_windows_joins_only_an_open_incident() -> None:
    engine = Engine()
    engine.send(alert(20))
    [late] = engine.send(alert(8, delay_minutes=30))  # 12 min before: between 2W and 3W
    assert late.outcome is Outcome.LATE_JOINED
    resolved = Engine()
    resolved.send(alert(20, fp="x"), alert(21, fp="x", status=AlertStatus.RESOLVED))
    [other] = resolved.send(alert(8, delay_minutes=30))
    assert other.outcome is Outcome.NEW_INCIDENT


def test_alert_beyond_three_windows_opens_a_new_incident() -> None:
    engine = Engine()
    engine.send(alert(30))
    [late] = engine.send(alert(0, delay_minutes=40))
    assert late.outcome is Outcome.NEW_INCIDENT


def test_live_alert_after_the_window_opens_a_new_incident() -> None:
    engine = Engine()
    engine.send(alert(0))
    [next_one] = engine.send(alert(7))
    assert next_one.outcome is Outcome.NEW_INCIDENT


def test_a_bridging_alert_merges_incidents_so_order_does_not_matter() -> None:
    engine = Engine()
    engine.send(alert(0))
    engine.send(alert(8))  # 8 min later: a second incident
    [bridge] = engine.send(alert(4, delay_minutes=5))
    assert len(engine.incidents()) == 1
    assert any("merged into" in r for r in bridge.reasons)


def test_a_bridge_merges_the_younger_incident_into_the_older_even_when_nearer_it() -> None:
    # web alerts first and pages; db alerts a little later, a second incident. The api
    # alert lies within the window of both, nearer db's: the older incident (the one
    # the on-call was paged for, and may have acknowledged) must take the alerts.
    deps = {"web": frozenset({"api"}), "api": frozenset({"db"})}
    engine = Engine(rules=Rules(dependencies=deps))
    [web] = engine.send(alert(0, "web"))
    [db] = engine.send(alert(1, "db"))
    [bridge] = engine.send(alert(4, "api"))
    [incident] = engine.incidents()
    assert incident.id == web.incident_id != db.incident_id
    assert bridge.incident_id == web.incident_id
    assert incident.services == {"web", "api", "db"}
    assert f"bridges incident {db.incident_id} (3 min away): merged into {web.incident_id}" in (
        bridge.reasons
    )
    assert engine.state("t1").merges == {db.incident_id: web.incident_id}
    merged = engine.state("t1").incidents[db.incident_id]
    assert merged.status is IncidentStatus.RESOLVED and merged.firing == 0
    assert merged.resolved_at == T0 + timedelta(minutes=4)  # ended by the bridge, at its time


def _bridged_pair(engine: Engine) -> tuple[IncidentState, IncidentState]:
    """Two incidents of db 8 min apart (older, younger), as stored before a bridge."""
    [older] = engine.send(alert(0))
    [younger] = engine.send(alert(8))
    incidents = engine.state("t1").incidents
    return incidents[older.incident_id], incidents[younger.incident_id]


def test_a_bridge_before_the_younger_incident_began_ends_it_no_earlier_than_its_alerts() -> None:
    engine = Engine()
    older, younger = _bridged_pair(engine)
    engine.send(alert(4, delay_minutes=5))  # between the two: before the younger began
    assert younger.merged_into == older.id
    assert younger.resolved_at == younger.last_at == T0 + timedelta(minutes=8)


def test_a_bridge_into_an_open_incident_keeps_the_younger_ones_acknowledgement() -> None:
    engine = Engine()
    older, younger = _bridged_pair(engine)
    acked = T0 + timedelta(minutes=9)
    younger.status, younger.acknowledged_at = IncidentStatus.ACKNOWLEDGED, acked
    engine.send(alert(4, delay_minutes=5))  # bridges the two
    assert younger.merged_into == older.id
    assert older.status is IncidentStatus.ACKNOWLEDGED  # someone is working on it
    assert older.acknowledged_at == acked


def test_a_merge_keeps_the_earliest_acknowledgement() -> None:
    engine = Engine()
    older, younger = _bridged_pair(engine)
    older.status, older.acknowledged_at = IncidentStatus.ACKNOWLEDGED, T0 + timedelta(minutes=12)
    younger.status, younger.acknowledged_at = IncidentStatus.ACKNOWLEDGED, T0 + timedelta(minutes=9)
    engine.send(alert(4, delay_minutes=5))
    assert (older.status, older.acknowledged_at) == (
        IncidentStatus.ACKNOWLEDGED,
        T0 + timedelta(minutes=9),
    )


def test_a_merge_stays_snoozed_only_while_every_live_side_was() -> None:
    engine = Engine()
    older, younger = _bridged_pair(engine)
    older.snoozed_until = T0 + timedelta(hours=1)
    engine.send(alert(4, delay_minutes=5))
    assert older.snoozed_until is None  # the younger one's alerts were never snoozed

    engine = Engine()
    older, younger = _bridged_pair(engine)
    older.snoozed_until = T0 + timedelta(hours=4)
    younger.snoozed_until = T0 + timedelta(hours=1)
    engine.send(alert(4, delay_minutes=5))
    assert older.snoozed_until == T0 + timedelta(hours=1)


def test_a_resolved_incident_that_takes_in_a_live_one_is_live_again() -> None:
    # The nearest incident is resolved and older; the bridging alert arrived already
    # resolved, so it reopens nothing itself: the live alerts handed over do.
    engine = Engine()
    engine.send(alert(0, fp="a"))
    engine.send(alert(1, fp="a", status=AlertStatus.RESOLVED))
    [younger] = engine.send(alert(8, fp="b"))
    incidents = engine.state("t1").incidents
    incidents[younger.incident_id].status = IncidentStatus.ACKNOWLEDGED
    [bridge] = engine.send(alert(4, fp="c", status=AlertStatus.RESOLVED, delay_minutes=5))
    [incident] = engine.incidents()
    assert incidents[younger.incident_id].merged_into == incident.id
    assert incident.firing == 1
    assert (incident.status, incident.resolved_at) == (IncidentStatus.ACKNOWLEDGED, None)
    assert "reopens the incident" in bridge.reasons and not bridge.page


def test_a_merge_of_two_resolved_incidents_ends_at_the_later_end() -> None:
    engine = Engine()
    older, younger = _bridged_pair(engine)
    for incident, minute in ((older, 3), (younger, 10)):
        incident.status, incident.firing = IncidentStatus.RESOLVED, 0
        incident.resolved_at = T0 + timedelta(minutes=minute)
    absorb(older, younger)
    assert (older.status, older.resolved_at) == (
        IncidentStatus.RESOLVED,
        T0 + timedelta(minutes=10),
    )


def test_dedup_and_resolve_close_the_incident() -> None:
    engine = Engine()
    engine.send(alert(0, fp="cpu"))
    [repeat] = engine.send(alert(0, fp="cpu"))
    assert repeat.outcome is Outcome.DEDUP and not repeat.page
    [resolve] = engine.send(alert(3, fp="cpu", status=AlertStatus.RESOLVED))
    assert resolve.outcome is Outcome.RESOLVED
    [incident] = engine.incidents()
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.resolved_at == T0 + timedelta(minutes=3)


def test_a_resolve_sent_again_later_moves_the_incidents_end_with_its_alerts() -> None:
    # Alertmanager re-sends a resolved alert in its group's later notifications, each
    # with a later endsAt; the alert keeps the latest, and so must its incident.
    engine = Engine()
    engine.send(alert(0, fp="cpu"))
    engine.send(alert(3, fp="cpu", status=AlertStatus.RESOLVED))
    [again] = engine.send(alert(5, fp="cpu", status=AlertStatus.RESOLVED))
    assert again.outcome is Outcome.DEDUP
    [incident] = engine.incidents()
    assert incident.resolved_at == T0 + timedelta(minutes=5)


def test_a_repeat_that_escalates_raises_the_incident_severity_without_paging() -> None:
    engine = Engine()
    engine.send(alert(0, fp="disk", severity=Severity.MEDIUM))
    [repeat] = engine.send(alert(0, fp="disk", severity=Severity.CRITICAL))
    assert repeat.outcome is Outcome.DEDUP and not repeat.page
    assert "raises the incident's severity to critical" in repeat.reasons
    [incident] = engine.incidents()
    assert incident.severity is Severity.CRITICAL
    assert incident.id in engine.state("t1").touched  # rescored and its messages updated
    [calmer] = engine.send(alert(0, fp="disk", severity=Severity.LOW))  # never lowered
    assert engine.incidents()[0].severity is Severity.CRITICAL and len(calmer.reasons) == 1


def test_every_delivery_folded_without_a_page_is_counted_on_its_incident() -> None:
    engine = Engine()
    engine.send(alert(0, fp="cpu"), alert(1, fp="mem"))
    engine.send(alert(0, fp="cpu"), alert(0, fp="cpu"))  # two repeats
    engine.send(alert(3, fp="cpu", status=AlertStatus.RESOLVED))  # a resolve: not folded
    engine.send(alert(3, fp="cpu", status=AlertStatus.RESOLVED))  # its repeat: folded
    [incident] = engine.incidents()
    assert incident.folded == 3
    assert engine.state("t1").refolded == {incident.id}


def test_a_merge_hands_the_folded_count_on() -> None:
    engine = Engine()
    engine.send(alert(0, fp="a"))
    engine.send(alert(0, fp="a"))
    engine.send(alert(8, fp="b"))  # 8 min later: a second incident
    engine.send(alert(8, fp="b"), alert(8, fp="b"))
    engine.send(alert(4, delay_minutes=5))  # bridges the two
    [incident] = engine.incidents()
    assert incident.folded == 3


def test_deploy_shortly_before_is_attached_as_likely_cause() -> None:
    deploy = DeployRef(id="D1", service="db", started_at=T0 - timedelta(minutes=6), version="v42")
    old = DeployRef(id="D0", service="db", started_at=T0 - timedelta(minutes=40))
    engine = Engine()
    engine.send(alert(0), deploys=[deploy, old])
    [incident] = engine.incidents()
    assert [d.id for d in incident.deploys] == ["D1"]
    assert any(r.startswith("+25") for r in incident.noise_reasons)


def test_a_deploy_after_the_incident_began_is_not_its_likely_cause() -> None:
    # The on-call ships a hotfix 2 min into the incident; the service alerts again at
    # minute 4. The hotfix is a response, not the cause, however it is delivered.
    hotfix = DeployRef(id="H1", service="db", started_at=T0 + timedelta(minutes=2))
    engine = Engine()
    engine.send(alert(0))
    engine.send(deploys=[hotfix])
    engine.send(alert(4))
    [incident] = engine.incidents()
    assert incident.alert_count == 2 and incident.deploys == []
    assert not any("deploy" in r for r in incident.noise_reasons)
    again = Engine()  # the deploy reported after both alerts: still not attached
    again.send(alert(0), alert(4))
    again.send(deploys=[hotfix])
    assert again.incidents()[0].deploys == []


def test_deploy_of_an_upstream_service_attaches_to_its_dependents_incident() -> None:
    deps = {"checkout": frozenset({"payments-db"})}
    deploy = DeployRef(id="D1", service="payments-db", started_at=T0 - timedelta(minutes=3))
    engine = Engine(rules=Rules(dependencies=deps))
    engine.send(alert(0, "checkout"), deploys=[deploy])
    [incident] = engine.incidents()
    assert [d.id for d in incident.deploys] == ["D1"]


def test_deploy_reported_after_the_alerts_still_attaches() -> None:
    engine = Engine()
    engine.send(alert(0))
    engine.send(deploys=[DeployRef(id="D9", service="db", started_at=T0 - timedelta(minutes=2))])
    [incident] = engine.incidents()
    assert [d.id for d in incident.deploys] == ["D9"]


def test_flapping_fingerprint_updates_quietly() -> None:
    engine = Engine()
    pages = []
    for minute in range(0, 40, 5):
        status = AlertStatus.FIRING if minute % 10 == 0 else AlertStatus.RESOLVED
        pages += [d.page for d in engine.send(alert(minute, fp="cpu", status=status))]
    assert pages[0] is True
    assert not any(pages[3:])
    assert any(d.flapping for d in engine.decisions)
    assert any("flapping" in r for d in engine.decisions for r in d.reasons)


def test_silence_in_audit_mode_delivers_and_says_it_would_suppress() -> None:
    silence = Silence(id="S1", matchers=(Matcher("service", "=", "db"),), author="ops")
    engine = Engine(rules=Rules(silences=(silence,)))
    [decision] = engine.send(alert(0))
    assert decision.page and decision.would_suppress == "S1" and decision.suppressed_by is None


def test_silence_in_strict_mode_suppresses_but_never_critical() -> None:
    silence = Silence(id="S1", matchers=(Matcher("service", "=", "db"),))
    engine = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [quiet] = engine.send(alert(0, fp="a"))
    assert quiet.suppressed_by == "S1" and not quiet.page
    engine2 = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [loud] = engine2.send(alert(0, fp="b", severity=Severity.CRITICAL))
    assert loud.suppressed_by is None and loud.page


def test_a_silence_made_after_the_alert_began_holds_back_its_first_notification() -> None:
    # Seen firing in Grafana at minute 0, silenced at minute 2; the sender's first
    # notification arrives at minute 3 (Alertmanager waits group_wait first). As
    # Alertmanager would, the silence holds it back.
    silence = Silence(
        id="S1", matchers=(Matcher("service", "=", "db"),), starts_at=T0 + timedelta(minutes=2)
    )
    engine = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [held] = engine.send(alert(0, fp="a", delay_minutes=3))
    assert held.suppressed_by == "S1" and not held.page
    [early] = engine.send(alert(0, fp="b", delay_minutes=1))  # arrived before the silence
    assert early.suppressed_by is None and early.page


def test_a_suppressed_alert_still_firing_when_its_silence_ends_pages_at_its_next_repeat() -> None:
    # Strict mode: a silence until minute 10 holds back the alert that opened the
    # incident. The sender repeats it (Alertmanager's repeat_interval) while it fires:
    # within the silence nothing pages; after it, the incident pages once, as
    # Alertmanager would, instead of staying unannounced for ever.
    silence = Silence(
        id="S1", matchers=(Matcher("service", "=", "db"),), ends_at=T0 + timedelta(minutes=10)
    )
    engine = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [first] = engine.send(alert(0, fp="a"))
    assert first.suppressed_by == "S1" and not first.page
    [within] = engine.send(alert(0, fp="a", delay_minutes=5))
    assert not within.page and within.reasons[-1].endswith("no new page")
    [after] = engine.send(alert(0, fp="a", delay_minutes=12))
    assert after.outcome is Outcome.DEDUP and after.page
    assert any("it pages now" in r for r in after.reasons)
    [incident] = engine.incidents()
    assert incident.paged and incident.id in engine.state("t1").touched
    [again] = engine.send(alert(0, fp="a", delay_minutes=20))
    assert not again.page  # paged once; later repeats are folded as ever


def test_a_suppressed_alert_repeated_as_critical_pages() -> None:
    silence = Silence(id="S1", matchers=(Matcher("service", "=", "db"),))
    engine = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [first] = engine.send(alert(0, fp="a", severity=Severity.MEDIUM))
    assert not first.page
    [worse] = engine.send(alert(0, fp="a", severity=Severity.CRITICAL, delay_minutes=1))
    assert worse.page
    assert any("critical alerts are never suppressed" in r for r in worse.reasons)


# --- properties over random streams --------------------------------------------------

stream = st.lists(
    st.tuples(
        st.integers(0, 120),  # minute
        st.sampled_from(["db", "api", "web"]),
        st.sampled_from(["t1", "t2"]),
        st.integers(0, 5),  # fingerprint variant
        st.booleans(),  # resolved?
        st.sampled_from(list(Severity)),
    ),
    min_size=1,
    max_size=40,
)


def _alerts(spec: list[tuple]) -> list[CanonicalAlert]:
    return [
        alert(
            m,
            s,
            fp=f"{s}-{v}",
            tenant=t,
            status=AlertStatus.RESOLVED if r else AlertStatus.FIRING,
            severity=sev,
        )
        for m, s, t, v, r, sev in spec
    ]


@settings(max_examples=150, deadline=None)
@given(stream, st.data())
def test_every_alert_lands_in_exactly_one_incident_of_its_own_tenant(spec, data) -> None:
    alerts = _alerts(spec)
    strict = data.draw(st.booleans())
    silence = Silence(id="S", matchers=(Matcher("service", "=~", ".+"),))
    engine = Engine(
        TenantSettings(
            governance_mode="strict" if strict else "audit",
            never_suppress_services=frozenset({"web"}),
        ),
        Rules(silences=(silence,)),
    )
    for chunk in _chunks(alerts, data.draw(st.integers(1, 5))):
        engine.send(*chunk)
    by_id = {a.id: a for a in alerts}
    assert len(engine.decisions) == len(alerts)
    for decision in engine.decisions:
        tenant = by_id[decision.alert_id].tenant_id if decision.alert_id in by_id else None
        incident = engine.state(tenant or "t1").incidents.get(decision.incident_id)
        assert incident is not None and incident.tenant_id == (tenant or incident.tenant_id)
        source = by_id.get(decision.alert_id)
        if source is not None and (source.severity is Severity.CRITICAL or source.service == "web"):
            assert decision.suppressed_by is None


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 4 * 60), min_size=1, max_size=12, unique=True),
    st.randoms(use_true_random=False),
)
def test_delivery_order_within_a_window_does_not_change_grouping(
    seconds, rnd: random.Random
) -> None:
    """Alerts of one service whose event times lie within one window form one incident,
    whatever order (and batching) they are delivered in."""
    alerts = [alert(s / 60, fp=f"f{s}") for s in seconds]
    shuffled = alerts[:]
    rnd.shuffle(shuffled)
    engine = Engine()
    for one in shuffled:
        engine.send(one)
    assert len(engine.groups()) == 1


@settings(max_examples=100, deadline=None)
@given(stream, st.randoms(use_true_random=False))
def test_grouping_of_alerts_with_clear_gaps_is_order_independent(spec, rnd: random.Random) -> None:
    """Gaps are either within the window or beyond three windows: no late-arrival
    tolerance applies, so any delivery order must give the same groups."""
    firing = [(m * 20 // 20, s, t, v, False, sev) for m, s, t, v, _, sev in spec]
    minutes = sorted({m for m, *_ in firing})
    spread = {m: i * 30 + (m % 3) for i, m in enumerate(minutes)}  # clusters 30 min apart
    alerts = [  # a still-firing fingerprint in two clusters would be one alert: keep them apart
        alert(spread[m], s, fp=f"{s}-{v}-{spread[m] // 30}", tenant=t, severity=sev)
        for m, s, t, v, _, sev in firing
    ]
    ordered = Engine()
    for one in sorted(alerts, key=lambda a: a.started_at):
        ordered.send(one)
    shuffled = alerts[:]
    rnd.shuffle(shuffled)
    other = Engine()
    for one in shuffled:
        other.send(one)
    assert _by_fingerprint(ordered, alerts) == _by_fingerprint(other, alerts)


def _by_fingerprint(engine: Engine, alerts: list[CanonicalAlert]) -> set[frozenset[str]]:
    """Groups named by the alerts' identity, since repeats fold into whichever copy came
    first (no resolves here, so a fingerprint is one alert)."""
    name = {a.id: (a.tenant_id, a.fingerprint) for a in alerts}
    return {frozenset(name[i] for i in group if i in name) for group in engine.groups()}


@settings(max_examples=100, deadline=None)
@given(stream)
def test_redelivering_a_stream_changes_nothing(spec) -> None:
    alerts = _alerts(spec)
    engine = Engine()
    engine.send(*alerts)
    before = {
        (i.id, i.alert_count, i.status, i.firing)
        for s in engine.states.values()
        for i in s.incidents.values()
    }
    replay = engine.send(*alerts)  # the same notifications again, as after a crash
    after = {
        (i.id, i.alert_count, i.status, i.firing)
        for s in engine.states.values()
        for i in s.incidents.values()
    }
    assert after == before
    assert all(d.outcome in (Outcome.DEDUP, Outcome.RESOLVED) or not d.page for d in replay)


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def test_fold_kinds_reach_the_engine_as_dedup() -> None:
    state = FingerprintState()
    first = alert(0, fp="x")
    assert fold(state, first).fold is Fold.NEW


def test_a_fire_and_its_resolve_in_one_batch_are_judged_one_by_one() -> None:
    engine = Engine()
    engine.send(alert(0, fp="a"))
    decisions = engine.send(alert(1, fp="b"), alert(2, fp="b", status=AlertStatus.RESOLVED))
    assert [d.outcome for d in decisions] == [Outcome.JOINED, Outcome.RESOLVED]
    [incident] = engine.incidents()
    assert (incident.status, incident.firing) == (IncidentStatus.OPEN, 1)


def test_a_critical_alert_joining_a_suppressed_incident_pages() -> None:
    silence = Silence(id="S1", matchers=(Matcher("service", "=", "db"),))
    engine = Engine(TenantSettings(governance_mode="strict"), Rules(silences=(silence,)))
    [quiet] = engine.send(alert(0, fp="a", severity=Severity.MEDIUM))
    [loud] = engine.send(alert(1, fp="b", severity=Severity.CRITICAL))
    assert not quiet.page and quiet.suppressed_by == "S1"
    assert loud.page and loud.incident_id == quiet.incident_id


def test_a_backfill_in_event_time_order_groups_like_live_delivery() -> None:
    minutes = [0, 3, 10, 12, 30]
    live, backfill = Engine(), Engine()
    for m in minutes:
        live.send(alert(m, fp=f"f{m}"))
        backfill.send(alert(m, fp=f"f{m}", delay_minutes=120))
    assert len(live.incidents()) == len(backfill.incidents()) == 3


STORED_FIELDS = ("status", "severity", "title", "description", "labels", "links", "ended_at")
notification = st.builds(
    lambda minute, status, severity, title, label: replace(
        alert(minute, fp="disk", status=status, severity=severity),
        title=title,
        labels={"pod": label} if label else {},
    ),
    st.integers(0, 30),
    st.sampled_from(AlertStatus),
    st.sampled_from(Severity),
    st.sampled_from(["db is unwell", "db is down", ""]),
    st.sampled_from(["", "a", "b"]),
)


@given(st.lists(notification, max_size=6), st.lists(notification, min_size=1, max_size=6))
def test_an_occurrence_whose_stored_fields_moved_is_marked_changed(
    before: list[CanonicalAlert], batch: list[CanonicalAlert]
) -> None:
    """A record without ``changed`` has only its counters and incident written
    (``storage.batch``): whatever a batch folds, a record whose stored fields differ
    from what was loaded must carry it."""
    state = FingerprintState()
    for item in before:
        fold(state, item)
    # As loaded by the next batch: fresh records, nothing marked.
    loaded = {
        r.alert.id: replace(r, alert=replace(r.alert))
        for r in (state.active, state.last_ended)
        if r is not None
    }
    state = FingerprintState(
        active=loaded.get(state.active.alert.id) if state.active else None,
        last_ended=loaded.get(state.last_ended.alert.id) if state.last_ended else None,
    )
    snapshot = {i: {f: getattr(r.alert, f) for f in STORED_FIELDS} for i, r in loaded.items()}
    for item in batch:
        result = fold(state, item)
        if result.fold is not Fold.NEW and result.record.alert.id in snapshot:
            now = {f: getattr(result.record.alert, f) for f in STORED_FIELDS}
            assert result.record.changed or now == snapshot[result.record.alert.id]


def test_a_plain_repeat_leaves_its_occurrence_unchanged() -> None:
    state = FingerprintState()
    fold(state, alert(0, fp="disk"))
    assert state.active is not None and not state.active.changed
    repeat = fold(state, alert(0, fp="disk"))
    assert repeat.fold is Fold.REPEAT and repeat.record.repeat_count == 2
    assert not repeat.record.changed
    worse = fold(state, alert(0, fp="disk", severity=Severity.CRITICAL))
    assert worse.record.changed and worse.record.alert.severity is Severity.CRITICAL
