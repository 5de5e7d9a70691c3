"""The incident noise score and its reasons (design §6.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dd0c_alert.correlation.model import (
    DeployRef,
    FingerprintHistory,
    IncidentState,
    IncidentStatus,
    TenantSettings,
)
from dd0c_alert.correlation.noise import noise_score
from dd0c_alert.domain.models import Severity

T0 = datetime(2024, 3, 1, 3, 0, tzinfo=UTC)
SETTINGS = TenantSettings()


def incident(**overrides: object) -> IncidentState:
    fields: dict[str, object] = {
        "id": "i1",
        "tenant_id": "t1",
        "status": IncidentStatus.OPEN,
        "title": "DB latency high",
        "severity": Severity.HIGH,
        "services": {"payments-db"},
        "first_at": T0,
        "last_at": T0 + timedelta(minutes=3),
        "fingerprints": {"fp-1"},
    }
    fields.update(overrides)
    return IncidentState(**fields)  # type: ignore[arg-type]


def deploy(title: str = "Bump pool size", minutes_before: float = 6, **kw: str) -> DeployRef:
    fields = {"id": "d1", "service": "payments-db", "version": "v42", "author": "dana"} | kw
    return DeployRef(started_at=T0 - timedelta(minutes=minutes_before), title=title, **fields)


def contributions(reasons: list[str]) -> list[int]:
    return [int(reason.split()[0]) for reason in reasons]


def test_nothing_noisy_scores_zero() -> None:
    assert noise_score(incident(), {}, SETTINGS) == (0, [])


def test_deploy_attached() -> None:
    score, reasons = noise_score(incident(deploys=[deploy()]), {}, SETTINGS)
    assert (score, reasons) == (
        25,
        ["+25 deploy v42 of payments-db (by dana) started 6 min before"],
    )


def test_deploy_counts_once_and_names_the_nearest_before() -> None:
    deploys = [
        deploy(minutes_before=12, id="d0", version="v41"),
        deploy(minutes_before=6),
        deploy(minutes_before=-1, id="d2", version="v43"),
    ]
    score, reasons = noise_score(incident(deploys=deploys), {}, SETTINGS)
    assert score == 25
    assert reasons == [
        "+25 deploy v42 of payments-db (by dana) started 6 min before (2 more deploy(s) attached)"
    ]


def test_deploy_after_the_start_and_without_version_or_author() -> None:
    late = deploy(minutes_before=-0.5, version="", author="")
    _, reasons = noise_score(incident(deploys=[late]), {}, SETTINGS)
    assert reasons == ["+25 deploy d1 of payments-db started 30 s after it began"]


@pytest.mark.parametrize(
    "title",
    [
        "Enable feature flag new-checkout",
        "feature-flag: checkout v2",
        "Turn on FF_NEW_CHECKOUT",
        "flip ff_checkout",
        "Flags: cleanup",
        "toggle dark launch",
        "featureflag rollout",
    ],
)
def test_feature_flag_titles(title: str) -> None:
    score, reasons = noise_score(incident(deploys=[deploy(title)]), {}, SETTINGS)
    assert score == 30
    assert (
        reasons[1]
        == f"+5 deploy v42 of payments-db (by dana) title mentions a feature flag: {title!r}"
    )


@pytest.mark.parametrize("title", ["Flagship page redesign", "diff_tool upgrade", "conflagration"])
def test_titles_without_a_feature_flag(title: str) -> None:
    score, _ = noise_score(incident(deploys=[deploy(title)]), {}, SETTINGS)
    assert score == 25


def test_flapping_counts_once_and_names_how_many() -> None:
    _, reasons = noise_score(incident(flapping={"fp-1", "fp-2"}), {}, SETTINGS)
    assert reasons == ["+30 2 fingerprints are flapping (≥ 4 state changes in 60 min)"]
    _, reasons = noise_score(incident(flapping={"fp-1"}), {}, SETTINGS)
    assert reasons == ["+30 1 fingerprint is flapping (≥ 4 state changes in 60 min)"]


@pytest.mark.parametrize(
    ("fired", "quick", "expected"),
    [(5, 4, True), (37, 35, True), (5, 3, False), (4, 4, False), (10, 7, False)],
)
def test_quick_auto_resolve_threshold(fired: int, quick: int, expected: bool) -> None:
    history = {"fp-1": FingerprintHistory(fired=fired, quick_auto_resolved=quick, acknowledged=1)}
    score, reasons = noise_score(incident(), history, SETTINGS)
    assert score == (20 if expected else 0)
    if expected:
        assert reasons[0].startswith(f"+20 fingerprint fp-1 fired {fired} times in 7 days")


def test_quick_auto_resolve_names_the_busiest_fingerprint_once() -> None:
    history = {
        "fp-1": FingerprintHistory(fired=5, quick_auto_resolved=5, acknowledged=1),
        "fp-2": FingerprintHistory(fired=37, quick_auto_resolved=35, acknowledged=1),
    }
    score, reasons = noise_score(incident(fingerprints={"fp-1", "fp-2", "fp-3"}), history, SETTINGS)
    assert score == 20
    assert reasons == [
        "+20 fingerprint fp-2 fired 37 times in 7 days and auto-resolved within 2 min 35 times "
        "(95%) (and 1 more fingerprint(s))"
    ]


def test_feedback_weighs_both_ways() -> None:
    history = {"fp-1": FingerprintHistory(noise_feedback=3, useful_feedback=1)}
    score, reasons = noise_score(incident(severity=Severity.INFO), history, SETTINGS)
    assert reasons == [
        "+20 marked noise 3 times before",
        "-20 marked useful once before",
        "+20 severity info",
    ]
    assert score == 20


def test_useful_feedback_cannot_push_below_zero() -> None:
    history = {"fp-1": FingerprintHistory(useful_feedback=2)}
    score, reasons = noise_score(incident(), history, SETTINGS)
    assert score == 0
    assert reasons == ["-20 marked useful 2 times before", "+20 score is at least 0"]


def test_never_acknowledged() -> None:
    history = {"fp-1": FingerprintHistory(fired=6)}
    assert noise_score(incident(), history, SETTINGS) == (
        10,
        ["+10 fingerprint fp-1 fired 6 times in 7 days, never acknowledged"],
    )
    assert noise_score(incident(), {"fp-1": FingerprintHistory(fired=4)}, SETTINGS) == (0, [])
    acked = {"fp-1": FingerprintHistory(fired=6, acknowledged=1)}
    assert noise_score(incident(), acked, SETTINGS) == (0, [])


@pytest.mark.parametrize(
    ("severity", "points"),
    [
        (Severity.INFO, 20),
        (Severity.LOW, 10),
        (Severity.MEDIUM, 5),
        (Severity.HIGH, 0),
        (Severity.CRITICAL, 0),
    ],
)
def test_severity(severity: Severity, points: int) -> None:
    score, reasons = noise_score(incident(severity=severity), {}, SETTINGS)
    assert score == points
    assert reasons == ([f"+{points} severity {severity.value}"] if points else [])


def _everything(**overrides: object) -> tuple[IncidentState, dict[str, FingerprintHistory]]:
    fields: dict[str, object] = {
        "deploys": [deploy("toggle ff_x")],
        "flapping": {"fp-1"},
        "severity": Severity.INFO,
    }
    fields.update(overrides)
    history = {"fp-1": FingerprintHistory(fired=10, quick_auto_resolved=10, noise_feedback=1)}
    return incident(**fields), history


def test_order_and_clamp_at_100() -> None:
    state, history = _everything()
    score, reasons = noise_score(state, history, SETTINGS)
    assert score == 100
    assert contributions(reasons) == [25, 5, 30, 20, 20, 10, 20, -30]
    assert reasons[-1] == "-30 score is at most 100"


def test_critical_is_capped_at_50() -> None:
    state, history = _everything(severity=Severity.CRITICAL)
    score, reasons = noise_score(state, history, SETTINGS)
    assert score == 50
    assert reasons[-2:] == ["-10 score is at most 100", "-50 capped at 50: critical severity"]
    assert sum(contributions(reasons)) == 50


def test_never_suppress_service_is_capped_at_50() -> None:
    state, history = _everything(services={"Payments-DB", "web"})
    config = TenantSettings(never_suppress_services=frozenset({"payments-db"}))
    score, reasons = noise_score(state, history, config)
    assert score == 50
    assert reasons[-2:] == [
        "-30 score is at most 100",
        "-50 capped at 50: Payments-DB on the never-suppress list",
    ]


def test_cap_leaves_low_scores_alone() -> None:
    score, reasons = noise_score(
        incident(severity=Severity.CRITICAL, deploys=[deploy()]), {}, SETTINGS
    )
    assert (score, len(reasons)) == (25, 1)


def test_deterministic() -> None:
    state, history = _everything(fingerprints={"fp-3", "fp-1", "fp-2"})
    history |= {"fp-2": FingerprintHistory(fired=9), "fp-3": FingerprintHistory(fired=9)}
    assert noise_score(state, history, SETTINGS) == noise_score(
        state, dict(reversed(history.items())), SETTINGS
    )


# --------------------------------------------------------------------------- properties

_fps = st.sampled_from(["fp-1", "fp-2", "fp-3"])
_services = st.sampled_from(["payments-db", "web", "api"])
_history = st.builds(
    FingerprintHistory,
    fired=st.integers(0, 50),
    quick_auto_resolved=st.integers(0, 50),
    acknowledged=st.integers(0, 5),
    noise_feedback=st.integers(0, 3),
    useful_feedback=st.integers(0, 3),
)
_histories = st.dictionaries(_fps, _history)
_deploys = st.lists(
    st.builds(
        deploy,
        title=st.sampled_from(["Bump", "feature flag on", "ff_x", ""]),
        minutes_before=st.floats(-10, 30),
    ),
    max_size=3,
)


@given(
    severity=st.sampled_from(Severity),
    services=st.sets(_services, min_size=1),
    fingerprints=st.sets(_fps),
    flapping=st.sets(_fps),
    deploys=_deploys,
    history=_histories,
    protected=st.frozensets(_services),
)
def test_score_is_bounded_capped_and_explained(
    severity: Severity,
    services: set[str],
    fingerprints: set[str],
    flapping: set[str],
    deploys: list[DeployRef],
    history: dict[str, FingerprintHistory],
    protected: frozenset[str],
) -> None:
    state = incident(
        severity=severity,
        services=services,
        fingerprints=fingerprints,
        flapping=flapping,
        deploys=deploys,
    )
    config = TenantSettings(never_suppress_services=protected)
    score, reasons = noise_score(state, history, config)
    assert 0 <= score <= 100
    if severity is Severity.CRITICAL or services & protected:
        assert score <= 50
    assert sum(contributions(reasons)) == score
    assert all(reason[0] in "+-" for reason in reasons)


_twelve = st.sampled_from([f"fp-{n}" for n in range(12)])


@given(
    fingerprints=st.sets(_twelve, max_size=12),
    history=st.dictionaries(_twelve, _history),
    others=st.integers(0, 40),
)
def test_history_of_other_fingerprints_changes_nothing(
    fingerprints: set[str], history: dict[str, FingerprintHistory], others: int
) -> None:
    """The worker hands every incident the history of its whole batch: only the
    incident's own fingerprints count, whichever of the two is larger."""
    state = incident(fingerprints=fingerprints)
    own = {fp: h for fp, h in history.items() if fp in fingerprints}
    crowded = {**history, **{f"other-{n}": FingerprintHistory(fired=50) for n in range(others)}}
    assert noise_score(state, crowded, SETTINGS) == noise_score(state, own, SETTINGS)
