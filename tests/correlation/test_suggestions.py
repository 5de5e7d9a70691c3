"""Suggestions from history, rule by rule, and the safety properties over random
histories: nothing critical, acknowledged, useful or never-suppress is ever proposed
for muting, and a proposed mute matches its fingerprint's alerts and nothing else."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.correlation.model import Rules, Silence, TenantSettings
from dd0c_alert.correlation.rules import in_schedule, matches, parse_matchers, parse_schedule
from dd0c_alert.correlation.suggestions import (
    TUNE_MUTE_DAYS,
    AlertOccurrence,
    Dependency,
    DependencyRemoval,
    DeployOccurrence,
    Feedback,
    History,
    Regrouping,
    Suggestion,
    _bursts,
    accept_note,
    fingerprint_stats,
    rule_for,
    suggest,
)
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
MIDNIGHT = NOW.replace(hour=0)


def occ(
    at: datetime,
    fp: str = "cpu",
    service: str = "web",
    *,
    lasts: timedelta | None = timedelta(seconds=60),
    severity: Severity = Severity.MEDIUM,
    incident: str = "",
    ack: bool = False,
    title: str = "",
) -> AlertOccurrence:
    return AlertOccurrence(
        fingerprint=fp,
        title=title or f"{fp} high",
        service=service,
        severity=severity,
        started_at=at,
        ended_at=None if lasts is None else at + lasts,
        incident_id=incident or f"inc-{fp}-{at.isoformat()}",
        acknowledged=ack,
    )


def hourly(count: int, fp: str = "cpu", **kwargs: Any) -> list[AlertOccurrence]:
    """``count`` firings, one every 3 hours back from now."""
    return [occ(NOW - timedelta(hours=3 * (i + 1)), fp, **kwargs) for i in range(count)]


def run(
    alerts: list[AlertOccurrence],
    *,
    deploys: list[DeployOccurrence] | None = None,
    feedback: dict[str, Feedback] | None = None,
    tenant: TenantSettings | None = None,
    rules: Rules | None = None,
) -> list[Suggestion]:
    history = History(
        now=NOW, alerts=tuple(alerts), deploys=tuple(deploys or ()), feedback=feedback or {}
    )
    return suggest(history, tenant or TenantSettings(), rules or Rules())


def kinds(found: list[Suggestion]) -> list[tuple[str, str]]:
    return [(s.kind, s.key) for s in found]


# --------------------------------------------------------------------------- tune


def test_noisy_fingerprint_is_proposed_for_tuning_with_its_evidence() -> None:
    [found] = run(hourly(37))
    assert found.kind == "tune" and found.key == "cpu"
    assert found.title == (
        "'cpu high' on web fired 37 times this week, always auto-resolved within 2 min, "
        "never acknowledged"
    )
    assert found.evidence == {
        "fired": 37,
        "auto_resolved_quickly": 37,
        "acknowledged": 0,
        "noise_feedback": 0,
    }
    assert found.proposal["action"] == "mute"
    assert found.proposal["duration_days"] == TUNE_MUTE_DAYS
    assert parse_matchers(found.proposal["matchers"]) == parse_matchers(
        '{service="web", fingerprint="cpu"}'
    )


def slow(count: int) -> list[AlertOccurrence]:
    """Firings that lasted 10 minutes: not quick."""
    return [occ(NOW - timedelta(hours=50 + i), lasts=timedelta(minutes=10)) for i in range(count)]


def test_tuning_needs_enough_firings_that_mostly_resolve_on_their_own() -> None:
    assert run(hourly(9)) == []  # too few
    assert kinds(run(hourly(8) + slow(2))) == [("tune", "cpu")]  # 8 of 10: the 80 % bar
    assert run(hourly(7) + slow(3)) == []
    still_firing = [occ(NOW - timedelta(hours=60 + i), lasts=None) for i in range(3)]
    assert run(hourly(7) + still_firing) == []


def test_partly_quick_fingerprint_says_how_often() -> None:
    [found] = run(hourly(18) + slow(2))
    assert "auto-resolved within 2 min 18 times (90 %)" in found.title


def test_old_firings_do_not_count_for_tuning() -> None:
    old = [occ(NOW - timedelta(days=8, hours=i)) for i in range(30)]
    assert [s for s in run(old) if s.kind == "tune"] == []


def test_noise_feedback_alone_can_propose_tuning() -> None:
    alerts = [
        occ(NOW - timedelta(hours=7 * i), lasts=timedelta(hours=1), incident=f"i{i}")
        for i in range(5)
    ]
    [found] = run(alerts, feedback={"i0": Feedback(noise=1), "i3": Feedback(noise=1)})
    assert found.kind == "tune"
    assert (
        found.title
        == "'cpu high' on web fired 5 times this week, marked noise 2 times, never acknowledged"
    )
    assert found.evidence["noise_feedback"] == 2


# --------------------------------------------------------------------------- safety


def test_never_proposes_muting_what_someone_acknowledged() -> None:
    alerts = hourly(30)
    alerts.append(occ(NOW - timedelta(days=20), ack=True))  # once, weeks ago
    assert run(alerts) == []


def test_never_proposes_muting_what_was_ever_critical() -> None:
    alerts = [*hourly(30), occ(NOW - timedelta(days=2, minutes=7), severity=Severity.CRITICAL)]
    assert run(alerts) == []


def test_never_proposes_muting_a_never_suppress_service_whatever_its_case() -> None:
    protected = TenantSettings(never_suppress_services=frozenset({"WEB"}))
    assert run(hourly(30), tenant=protected) == []


def test_never_proposes_muting_what_someone_called_useful() -> None:
    alerts = hourly(30, incident="shared")
    assert run(alerts, feedback={"shared": Feedback(noise=3, useful=1)}) == []


# --------------------------------------------------------------------------- silence


def test_alert_firing_every_night_in_one_window_gets_a_recurring_silence() -> None:
    alerts = [
        occ(MIDNIGHT - timedelta(days=d) + timedelta(hours=2, minutes=5 + d % 3 * 5), "backup-io")
        for d in range(14)
    ]
    [found] = run(alerts)
    assert found.kind == "silence" and found.key == "backup-io"
    assert found.proposal["schedule"] == "daily 02:00-02:30"
    assert found.evidence == {"fired": 14, "days": 14, "weekdays": 7, "acknowledged": 0}
    assert "always every day between 02:00 and 02:30 UTC" in found.title
    windows = parse_schedule(found.proposal["schedule"])
    assert all(in_schedule(windows, a.started_at) for a in alerts)


def test_weekly_job_gets_a_silence_on_its_weekday_only() -> None:
    sundays = [datetime(2026, 11, 22, 3, 10, tzinfo=UTC) - timedelta(weeks=w) for w in range(3)]
    [found] = run([occ(at, "weekly-batch") for at in sundays])
    assert found.proposal["schedule"] == "sun 03:00-03:15"


def test_window_across_midnight_belongs_to_the_evening_it_starts() -> None:
    alerts = []
    for d in range(1, 15):
        night = MIDNIGHT - timedelta(days=d)
        alerts += [
            occ(night - timedelta(minutes=10), "rotate"),
            occ(night + timedelta(minutes=10), "rotate"),
        ]
    [found] = run(alerts)
    assert found.proposal["schedule"] == "daily 23:45-00:15"
    windows = parse_schedule(found.proposal["schedule"])
    assert all(in_schedule(windows, a.started_at) for a in alerts)


def test_no_silence_without_recurrence_or_with_a_wide_spread() -> None:
    once_each = [MIDNIGHT - timedelta(days=d) + timedelta(hours=2) for d in (1, 2, 3)]
    assert run([occ(at, "odd") for at in once_each]) == []  # each weekday seen once
    spread = [MIDNIGHT - timedelta(days=d) + timedelta(hours=2 if d % 2 else 6) for d in range(14)]
    assert run([occ(at, "spread") for at in spread]) == []
    stopped = [MIDNIGHT - timedelta(days=10 + d) + timedelta(hours=2) for d in range(14)]
    assert run([occ(at, "stopped") for at in stopped]) == []  # not in the last week


def test_a_silence_replaces_the_tune_suggestion_for_the_same_fingerprint() -> None:
    alerts = [
        occ(MIDNIGHT - timedelta(days=d) + timedelta(hours=2, minutes=m), "nightly")
        for d in range(14)
        for m in (0, 10)
    ]
    assert kinds(run(alerts)) == [("silence", "nightly")]


# --------------------------------------------------------------------------- link


def burst(
    at: datetime,
    first: str,
    then: str,
    *,
    gap: timedelta = timedelta(minutes=2),
    same: bool = False,
) -> list[AlertOccurrence]:
    one = f"inc-{first}-{at.isoformat()}"
    return [
        occ(at, f"{first}-fp", first, incident=one, lasts=timedelta(minutes=20)),
        occ(
            at + gap,
            f"{then}-fp",
            then,
            incident=one if same else f"inc-{then}-{at.isoformat()}",
            lasts=timedelta(minutes=20),
        ),
    ]


def days_ago(n: float) -> datetime:
    return NOW - timedelta(days=n)


def test_services_alerting_together_are_proposed_as_linked_upstream_first() -> None:
    alerts = [a for d in range(1, 5) for a in burst(days_ago(d), "payments-db", "checkout")]
    [found] = run(alerts)
    assert found.kind == "link" and found.key == "checkout|payments-db"
    assert found.proposal == {
        "action": "declare_dependency",
        "service": "checkout",
        "depends_on": "payments-db",
        "direction": "observed",
    }
    assert found.evidence == {
        "together": 4,
        "service_bursts": 4,
        "depends_on_bursts": 4,
        "service_first": 0,
        "depends_on_first": 4,
    }
    assert "payments-db alerted first 4 times" in found.title


def test_link_direction_is_a_guess_when_neither_leads() -> None:
    alerts = [a for d in (1, 2) for a in burst(days_ago(d), "a", "b")]
    alerts += [a for d in (3, 4) for a in burst(days_ago(d), "b", "a")]
    [found] = run(alerts)
    assert found.proposal["direction"] == "guessed"
    assert "check the direction before accepting" in found.title


def test_no_link_when_declared_grouped_rare_or_a_storm() -> None:
    alerts = [a for d in range(1, 5) for a in burst(days_ago(d), "db", "api")]
    declared = Rules(dependencies={"db": frozenset({"api"})})  # either direction counts
    assert run(alerts, rules=declared) == []
    grouped = [a for d in range(1, 5) for a in burst(days_ago(d), "db", "api", same=True)]
    assert run(grouped) == []
    assert run(alerts[:4]) == []  # two bursts only
    apart = [
        a for d in range(1, 5) for a in burst(days_ago(d), "db", "api", gap=timedelta(minutes=9))
    ]
    assert run(apart) == []  # further apart than the window
    storm = [
        occ(days_ago(d) + timedelta(seconds=s), f"fp{s}", f"svc{s}", lasts=timedelta(hours=1))
        for d in range(1, 5)
        for s in range(7)
    ]
    assert [s for s in run(storm) if s.kind == "link"] == []


def test_link_needs_most_of_the_quieter_service_bursts() -> None:
    alerts = [a for d in range(1, 4) for a in burst(days_ago(d), "db", "api")]

    def alone(service: str, count: int) -> list[AlertOccurrence]:
        at = 4.5 if service == "db" else 5.5
        return [
            occ(days_ago(at + i / 10), f"{service}-fp", service, lasts=timedelta(minutes=20))
            for i in range(count)
        ]

    assert run(alerts + alone("db", 3) + alone("api", 3)) == []  # 3 of 6 bursts each
    found = run(alerts + alone("db", 2) + alone("api", 5))  # db: 3 of 5
    assert kinds(found) == [("link", "api|db")]
    assert found[0].evidence["service_bursts"] == 8


def test_a_cascade_over_the_burst_cap_makes_no_pairs() -> None:
    """One incident over 400 services would be 79,800 service pairs. A burst over the
    cap is never read, so none are made, and links elsewhere are still found."""
    cascade = [
        occ(days_ago(6) + timedelta(seconds=s), f"fp{s}", f"svc{s}", incident="cascade")
        for s in range(400)
    ]
    [only] = _bursts(History(now=NOW, alerts=tuple(cascade)), timedelta(minutes=5))
    assert len(only.first_alert) == 400
    assert not only.grouped
    alerts = [a for d in range(1, 5) for a in burst(days_ago(d), "payments-db", "checkout")]
    assert kinds(run(alerts + cascade)) == [("link", "checkout|payments-db")]


# --------------------------------------------------------------------------- deploy grace


def deploy_storm(
    service: str = "api", severity: Severity = Severity.MEDIUM
) -> tuple[list[AlertOccurrence], list[DeployOccurrence]]:
    deploys = [DeployOccurrence(service, days_ago(d)) for d in (1, 2, 3, 4, 5)]
    alerts = [
        occ(
            d.started_at + timedelta(minutes=3 + i),
            f"err{i}",
            service,
            lasts=timedelta(minutes=30),
            severity=severity,
        )
        for d in deploys[:4]
        for i in range(2)
    ]
    alerts.append(occ(days_ago(6), "err-other", service, lasts=timedelta(minutes=30)))
    return alerts, deploys


def test_alerts_following_deploys_propose_a_grace_window() -> None:
    alerts, deploys = deploy_storm()
    [found] = run(alerts, deploys=deploys)
    assert found.kind == "deploy_grace" and found.key == "api"
    assert found.proposal == {
        "action": "deploy_grace",
        "service": "api",
        "grace_seconds": 240,
        "applies_to": "non-critical alerts",
    }
    assert found.evidence == {
        "deploys": 5,
        "deploys_followed_by_alerts": 4,
        "alerts": 9,
        "alerts_after_deploys": 8,
        "critical_alerts_after_deploys": 0,
    }
    assert found.title.startswith("api alerted after 4 of its 5 deploys this week")


def test_no_grace_for_critical_alerts_or_protected_services() -> None:
    alerts, deploys = deploy_storm(severity=Severity.CRITICAL)
    assert run(alerts, deploys=deploys) == []
    alerts, deploys = deploy_storm()
    protected = TenantSettings(never_suppress_services=frozenset({"api"}))
    assert run(alerts, deploys=deploys, tenant=protected) == []


def test_no_grace_when_most_alerts_do_not_follow_deploys() -> None:
    alerts, deploys = deploy_storm()
    alerts += [
        occ(days_ago(6 + i / 24), f"x{i}", "api", lasts=timedelta(hours=1)) for i in range(9)
    ]
    assert run(alerts, deploys=deploys) == []


# --------------------------------------------------------------------------- order, accept


def test_order_is_by_kind_then_strength_and_independent_of_input_order() -> None:
    alerts = hourly(12, "a") + hourly(20, "b")
    alerts += [a for d in range(1, 5) for a in burst(days_ago(d) + timedelta(hours=1), "db", "api")]
    found = run(alerts)
    assert kinds(found) == [("tune", "b"), ("tune", "a"), ("link", "api|db")]
    shuffled = alerts[:]
    random.Random(7).shuffle(shuffled)
    assert run(shuffled) == found


def test_accepted_tune_becomes_a_timed_silence_of_the_fingerprint() -> None:
    [found] = run(hourly(20))
    rule = rule_for("S1", "R1", found.kind, found.title, found.proposal, NOW)
    assert isinstance(rule, Silence)
    assert rule.id == "R1" and rule.author == "suggestion:S1"
    assert rule.starts_at == NOW and rule.ends_at == NOW + timedelta(days=TUNE_MUTE_DAYS)
    assert rule.comment == f"accepted suggestion S1: {found.title}"
    assert "audit: it only logs 'would suppress'" in accept_note(rule, TenantSettings())
    strict = accept_note(rule, TenantSettings(governance_mode="strict"))
    assert "strict: it suppresses delivery" in strict


def test_accepted_silence_link_and_grace() -> None:
    nightly = [occ(MIDNIGHT - timedelta(days=d) + timedelta(hours=2), "n") for d in range(14)]
    [silence] = run(nightly)
    rule = rule_for("S2", "R2", silence.kind, silence.title, silence.proposal, NOW)
    assert (
        isinstance(rule, Silence) and rule.schedule == "daily 02:00-02:15" and rule.ends_at is None
    )
    link = rule_for("S3", "R3", "link", "t", {"service": "api", "depends_on": "db"}, NOW)
    assert link == Dependency("api", "db")
    assert "api depends on db" in accept_note(link, TenantSettings())
    assert rule_for("S4", "R4", "deploy_grace", "t", {"service": "api"}, NOW) is None
    assert accept_note(None, TenantSettings()).startswith("nothing was created")


# --------------------------------------------------------------------------- merges, splits


def merge(days: float, merged: str, into: str, n: int) -> Regrouping:
    """Incident ``m<n>`` of service ``merged`` merged by hand into ``i<n>`` of ``into``."""
    return Regrouping(
        "merge", days_ago(days), f"m{n}", f"i{n}", frozenset({merged}), frozenset({into})
    )


def split(days: float, moved: str, kept: str, n: int) -> Regrouping:
    return Regrouping(
        "split", days_ago(days), f"s{n}", f"new{n}", frozenset({moved}), frozenset({kept})
    )


def learn(*regroupings: Regrouping, rules: Rules | None = None) -> list[Suggestion]:
    history = History(now=NOW, regroupings=regroupings)
    return suggest(history, TenantSettings(), rules or Rules())


def test_incidents_merged_by_hand_twice_propose_a_link_citing_the_merges() -> None:
    assert learn(merge(3, "checkout", "payments-db", 1)) == []  # once is not a habit
    [found] = learn(merge(20, "checkout", "payments-db", 1), merge(3, "checkout", "payments-db", 2))
    assert found.kind == "link" and found.key == "checkout|payments-db"
    assert found.proposal == {
        "action": "declare_dependency",
        "service": "checkout",
        "depends_on": "payments-db",  # the incident people merged into: the guess
        "direction": "guessed",
    }
    assert found.evidence["merged_by_hand"] == 2 and found.evidence["together"] == 0
    assert [c["incident_id"] for c in found.cites] == ["m2", "m1"]  # newest first
    assert found.cites[0] == {
        "kind": "merge",
        "incident_id": "m2",
        "other_id": "i2",
        "at": days_ago(3).isoformat(),
    }
    assert "people merged their incidents by hand 2 times in 28 days (m2 into i2" in found.title
    # Too old, a service on both sides, or declared already: nothing.
    assert learn(merge(30, "a", "b", 1), merge(29, "a", "b", 2)) == []
    both = Regrouping(
        "merge", days_ago(1), "m1", "i1", frozenset({"a", "b"}), frozenset({"a", "b"})
    )
    assert learn(both, both) == []
    declared = Rules(dependencies={"checkout": frozenset({"payments-db"})})
    assert (
        learn(
            merge(2, "checkout", "payments-db", 1),
            merge(1, "checkout", "payments-db", 2),
            rules=declared,
        )
        == []
    )


def test_merges_add_to_alerting_together_in_one_link() -> None:
    alerts = [a for d in range(1, 5) for a in burst(days_ago(d), "payments-db", "checkout")]
    history = History(
        now=NOW,
        alerts=tuple(alerts),
        regroupings=(
            merge(2, "checkout", "payments-db", 1),
            merge(1, "checkout", "payments-db", 2),
        ),
    )
    [found] = suggest(history, TenantSettings(), Rules())
    assert found.evidence["together"] == 4 and found.evidence["merged_by_hand"] == 2
    assert found.proposal["direction"] == "observed"
    assert found.title.startswith("checkout and payments-db alerted together 4 times this week and")


def test_splits_across_a_declared_dependency_propose_removing_it() -> None:
    rules = Rules(dependencies={"api": frozenset({"db"})})
    assert learn(split(2, "api", "db", 1), rules=rules) == []
    [found] = learn(split(2, "db", "api", 1), split(1, "api", "db", 2), rules=rules)
    assert found.kind == "unlink" and found.key == "api>db"
    assert found.proposal == {"action": "remove_dependency", "service": "api", "depends_on": "db"}
    assert found.evidence == {"split_by_hand": 2}
    assert [c["incident_id"] for c in found.cites] == ["s2", "s1"]
    assert "people split api and db apart by hand 2 times" in found.title
    rule = rule_for("S5", "R5", found.kind, found.title, found.proposal, NOW)
    assert rule == DependencyRemoval("api", "db")
    assert "removed the dependency of api on db" in accept_note(rule, TenantSettings())
    # Without a declared dependency there is nothing to remove.
    assert learn(split(2, "db", "api", 1), split(1, "api", "db", 2)) == []


def test_services_people_split_apart_are_never_proposed_as_a_link() -> None:
    alerts = [a for d in range(1, 5) for a in burst(days_ago(d), "db", "api")]
    splits = (split(2, "db", "api", 1), split(1, "api", "db", 2))
    assert kinds(run(alerts)) == [("link", "api|db")]
    assert suggest(History(NOW, tuple(alerts), regroupings=splits), TenantSettings(), Rules()) == []


# --------------------------------------------------------------------------- properties

SEVERITIES = st.sampled_from([Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO])


@st.composite
def histories(draw: st.DrawFn) -> tuple[History, TenantSettings, Rules]:
    """Four fingerprints on three services, each firing up to 40 times at a few times
    of day (so windows recur and services co-occur), some of them once critical or
    acknowledged; deploys, feedback, never-suppress services and a declared link."""
    alerts = []
    for fp in range(4):
        critical_at = draw(st.integers(-16, 3))  # which firing (if any) was critical
        acked_at = draw(st.integers(-16, 3))
        times_of_day = draw(st.sampled_from([(120, 125), (1435, 5), (120, 600)]))
        durations = draw(st.sampled_from([(30, 90), (None, 30, 90, 600)]))
        for n in range(draw(st.integers(0, 40))):
            day = draw(st.integers(0, 27))
            minute = draw(st.sampled_from(times_of_day))
            start = MIDNIGHT - timedelta(days=day) + timedelta(minutes=minute)
            lasts = draw(st.sampled_from(durations))
            alerts.append(
                AlertOccurrence(
                    fingerprint=f"fp{fp}",
                    title=f"alert {fp}",
                    service=f"svc{fp % 3}",
                    severity=Severity.CRITICAL if n == critical_at else draw(SEVERITIES),
                    started_at=start,
                    ended_at=None if lasts is None else start + timedelta(seconds=lasts),
                    incident_id=f"inc{fp}-{day}",
                    acknowledged=n == acked_at,
                )
            )
    deploys = [
        DeployOccurrence(f"svc{draw(st.integers(0, 2))}", MIDNIGHT - timedelta(minutes=m))
        for m in draw(st.lists(st.integers(0, 7 * 1440), max_size=10))
    ]
    deploys += [
        DeployOccurrence(a.service, a.started_at - timedelta(minutes=2)) for a in alerts[::3]
    ]
    feedback = {
        f"inc{fp}-{day}": Feedback(noise=draw(st.integers(0, 2)), useful=draw(st.integers(0, 1)))
        for fp, day in draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 27)), max_size=6))
    }
    protected = frozenset(draw(st.lists(st.sampled_from(["svc0", "SVC1"]), max_size=1)))
    declared = {"svc0": frozenset({"svc1"})} if draw(st.booleans()) else {}
    history = History(NOW, tuple(alerts), tuple(deploys), feedback)
    return history, TenantSettings(never_suppress_services=protected), Rules(dependencies=declared)


def as_alert(o: AlertOccurrence) -> CanonicalAlert:
    return CanonicalAlert(
        tenant_id="t",
        source="custom",
        source_ref=o.fingerprint,
        fingerprint=o.fingerprint,
        status=AlertStatus.FIRING,
        severity=o.severity,
        title=o.title,
        service=o.service,
        started_at=o.started_at,
        received_at=o.started_at,
    )


@settings(max_examples=200, deadline=None)
@given(histories())
def test_properties_of_suggestions(case: tuple[History, TenantSettings, Rules]) -> None:
    history, tenant, rules = case
    found = suggest(history, tenant, rules)
    stats = fingerprint_stats(history)
    protected = {s.casefold() for s in tenant.never_suppress_services}
    for s in found:
        if s.kind in ("tune", "silence"):
            fp = stats[s.key]
            mine = [o for o in history.alerts if o.fingerprint == s.key]
            assert fp.severity is not Severity.CRITICAL
            assert not any(o.acknowledged for o in mine)
            assert fp.useful_feedback == 0
            assert fp.service.casefold() not in protected
            matchers = parse_matchers(s.proposal["matchers"])
            assert matchers
            for o in history.alerts:  # exactly its own fingerprint's alerts
                assert matches(matchers, as_alert(o)) == (o.fingerprint == s.key)
            if s.kind == "silence":
                windows = parse_schedule(s.proposal["schedule"])
                assert all(in_schedule(windows, o.started_at) for o in mine)
        elif s.kind == "link":
            a, b = s.proposal["service"], s.proposal["depends_on"]
            assert a != b
            assert b not in rules.dependencies.get(a, ()) and a not in rules.dependencies.get(b, ())
        else:
            assert s.proposal["service"].casefold() not in protected
    shuffled = list(history.alerts)
    random.Random(len(shuffled)).shuffle(shuffled)
    again = History(NOW, tuple(shuffled), tuple(reversed(history.deploys)), history.feedback)
    assert suggest(again, tenant, rules) == found
    assert len({(s.kind, s.key) for s in found}) == len(found)
