import json
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.providers import datadog
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads"
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DELIVERY = Delivery(
    tenant_id="t1", provider="datadog", event_id="ev1", received_at=RECEIVED, headers={}
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / "datadog" / name).read_bytes())


def one(payload: Any) -> CanonicalAlert:
    [alert] = datadog.normalise(payload, DELIVERY)
    assert isinstance(alert, CanonicalAlert)
    return alert


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


# Exact expectations for every real fixture.
REAL = {
    "keep_log_alert_triggered.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.HIGH,  # no priority; alert_type error
        "title": "Error monitor on service:keep-api-matvey-kuk-workflows-fix",
        "service": "keep-api-matvey-kuk-workflows-fix",
        "environment": "",
        "resource": "",
        "fingerprint": "datadog:160076582:service:keep-api-matvey-kuk-workflows-fix",
        "source_ref": "160076582:service:keep-api-matvey-kuk-workflows-fix",
        "started_at": ms(1733930133000),
        "ended_at": None,
        "labels": {
            "service": "keep-api-matvey-kuk-workflows-fix",
            "datadog_monitor_id": "160076582",
            "datadog_transition": "Triggered",
            "datadog_alert_type": "error",
            "datadog_event_type": "log_alert",
            "datadog_org": "DPN | KeepHQ",
        },
    },
    "keep_log_alert_recovered.json": {
        "status": AlertStatus.RESOLVED,
        "severity": Severity.MEDIUM,  # a recovery without priority: level unknown
        "title": "Error monitor on service:keep-api-matvey-kuk-workflows-fix",
        "service": "keep-api-matvey-kuk-workflows-fix",
        "environment": "",
        "resource": "",
        "fingerprint": "datadog:160076582:service:keep-api-matvey-kuk-workflows-fix",
        "source_ref": "160076582:service:keep-api-matvey-kuk-workflows-fix",
        "started_at": ms(1733930912000),
        "ended_at": ms(1733930912000),
        "labels": {
            "service": "keep-api-matvey-kuk-workflows-fix",
            "datadog_transition": "Recovered",
            "datadog_alert_type": "success",
        },
    },
    "keep_log_alert_warn_p2.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.HIGH,  # P2 wins over the Warn transition
        "title": "Unauthorized access to API keep-api",
        "service": "keep-api",
        "environment": "production",
        "resource": "",
        "fingerprint": "datadog:134462228:service:keep-api",
        "source_ref": "134462228:service:keep-api",
        "started_at": ms(1733930378000),
        "ended_at": None,
        "labels": {
            "environment": "production",
            "service": "keep-api",
            "datadog_priority": "P2",
            "datadog_transition": "Warn",
            "datadog_scope": "service:keep-api",
        },
    },
    "nudgebee_query_alert_triggered_default_payload.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.CRITICAL,
        "title": "CPU usage is high for host k3s-example-node-pool-a6e3h",
        "service": "",
        "environment": "",
        "resource": "k3s-example-node-pool-a6e3h",
        "fingerprint": "datadog:8248529:host:k3s-example-node-pool-a6e3h",
        "source_ref": "8248529:host:k3s-example-node-pool-a6e3h",
        "started_at": ms(1751007029000),
        "ended_at": None,
        "labels": {
            "host": "k3s-example-node-pool-a6e3h",
            "datadog_monitor_id": "8248529",
            "datadog_priority": "P1",
            "datadog_transition": "Triggered",
            "datadog_event_type": "query_alert_monitor",
            "datadog_org": "Nudgebee",
        },
    },
    "nudgebee_error_tracking_recovered_default_payload.json": {
        "status": AlertStatus.RESOLVED,
        "severity": Severity.HIGH,
        "title": "New issue to review on issue.id:655bd304-5322-11f0-80d4-da7ad0900000",
        "service": "",
        "environment": "",
        "resource": "",
        "fingerprint": "datadog:8249055:issue.id:655bd304-5322-11f0-80d4-da7ad0900000",
        "source_ref": "8249055:issue.id:655bd304-5322-11f0-80d4-da7ad0900000",
        "started_at": ms(1751174655000),
        "ended_at": ms(1751174655000),
        "labels": {
            "issue.id": "655bd304-5322-11f0-80d4-da7ad0900000",
            "datadog_monitor_id": "8249055",
            "datadog_priority": "P2",
            "datadog_transition": "Recovered",
            "datadog_event_type": "error_tracking_alert",
        },
    },
    "nudgebee_synthetics_custom_payload.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.MEDIUM,
        "title": "[Synthetics] XYZ - A monitor that always fails",
        "service": "",
        "environment": "",
        "resource": "",
        "fingerprint": "datadog:73e071f5c67d33400f240ec415c2d48e",
        "source_ref": "73e071f5c67d33400f240ec415c2d48e",
        "started_at": ms(1773489470000),
        "ended_at": None,
        "labels": {
            "datadog_monitor_id": "166187407",
            "datadog_aggregation_key": "73e071f5c67d33400f240ec415c2d48e",
            "datadog_priority": "P3",
            "datadog_transition": "Triggered",
            "datadog_alert_type": "error",
            "datadog_event_type": "synthetics_alert",
        },
    },
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_fixture_fields(name: str) -> None:
    alert = one(load(name))
    expected = dict(REAL[name])
    labels = expected.pop("labels")
    assert alert.source == "datadog"
    assert alert.tenant_id == "t1"
    assert alert.received_at == RECEIVED
    for field, value in expected.items():
        assert getattr(alert, field) == value, field
    assert isinstance(labels, dict)
    for key, value in labels.items():
        assert alert.labels[key] == value, key
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())


def test_every_real_fixture_is_covered() -> None:
    files = {
        p.name
        for p in (FIXTURES / "datadog").glob("*.json")
        if not p.name.endswith(".headers.json") and "handmade" not in p.name
    }
    assert files == set(REAL)


def test_links_and_description_from_the_default_payload() -> None:
    alert = one(load("nudgebee_query_alert_triggered_default_payload.json"))
    assert alert.links["monitor"].startswith(
        "https://us5.datadoghq.com/monitors/8248529?group=host%3Ak3s-example-node-pool-a6e3h"
    )
    assert "source" not in alert.links  # the default template has no $LINK
    assert alert.description.startswith("## \U0001f6a8 What")
    assert "%%%" not in alert.description

    keep = one(load("keep_log_alert_triggered.json"))
    assert keep.links["source"] == "https://app.datadoghq.com/event/event?id=7879709198622396010"


def test_keep_triggered_and_recovered_share_a_fingerprint() -> None:
    fired = one(load("keep_log_alert_triggered.json"))
    recovered = one(load("keep_log_alert_recovered.json"))
    assert fired.fingerprint == recovered.fingerprint
    assert (fired.status, recovered.status) == (AlertStatus.FIRING, AlertStatus.RESOLVED)


def test_nudgebee_default_payload_pair_shares_a_fingerprint() -> None:
    fired = one(load("nudgebee_query_alert_triggered_default_payload.json"))
    recovered = one(load("nudgebee_query_alert_recovered_default_payload_handmade.json"))
    assert recovered.status is AlertStatus.RESOLVED
    assert recovered.fingerprint == fired.fingerprint
    assert recovered.title == fired.title
    assert recovered.severity is Severity.CRITICAL
    assert recovered.ended_at == ms(1751007929000)


def test_nudgebee_real_recovered_is_another_monitor() -> None:
    # The two real nudgebee bodies are not a pair: different monitors (8248529 vs 8249055).
    fired = one(load("nudgebee_query_alert_triggered_default_payload.json"))
    other = one(load("nudgebee_error_tracking_recovered_default_payload.json"))
    assert fired.fingerprint != other.fingerprint


def test_synthetics_pair_shares_the_aggregation_key() -> None:
    fired = one(load("nudgebee_synthetics_custom_payload.json"))
    recovered = one(load("nudgebee_synthetics_recovered_handmade.json"))
    assert recovered.status is AlertStatus.RESOLVED
    assert recovered.fingerprint == fired.fingerprint == "datadog:73e071f5c67d33400f240ec415c2d48e"
    assert recovered.title == fired.title


def test_keep_sequence_every_line_normalises_and_pairs_fold() -> None:
    path = FIXTURES / "_sequences" / "datadog_keep_2024-12-11.jsonl"
    lines = path.read_bytes().splitlines()
    assert len(lines) == 43
    by_group: dict[tuple[str, str], set[str]] = defaultdict(set)
    statuses: dict[tuple[str, str], set[AlertStatus]] = defaultdict(set)
    for line in lines:
        raw = json.loads(line)
        alert = one(raw)
        group = (raw["monitor_id"], raw["scopes"])
        by_group[group].add(alert.fingerprint)
        statuses[group].add(alert.status)
        expected = (
            AlertStatus.RESOLVED if raw["alert_transition"] == "Recovered" else AlertStatus.FIRING
        )
        assert alert.status is expected
        if raw["scopes"].startswith("service:"):
            assert alert.service == raw["scopes"].removeprefix("service:")
        assert alert.started_at == ms(int(raw["date"]))
    # One fingerprint per monitor + scope, distinct across groups.
    assert all(len(fps) == 1 for fps in by_group.values())
    assert len({next(iter(fps)) for fps in by_group.values()}) == len(by_group) == 21
    paired = [g for g, s in statuses.items() if s == {AlertStatus.FIRING, AlertStatus.RESOLVED}]
    assert len(paired) == 14
    assert ("160076582", "service:keep-api-matvey-kuk-workflows-fix") in paired


def test_keep_sequence_scope_with_colon_in_value() -> None:
    path = FIXTURES / "_sequences" / "datadog_keep_2024-12-11.jsonl"
    raw = json.loads(path.read_bytes().splitlines()[6])
    alert = one(raw)
    assert alert.fingerprint == "datadog:160077064:database_id:keephq-sandbox:keep"
    assert alert.labels["database_id"] == "keephq-sandbox:keep"
    assert alert.title == "Somethine weird in DB on database_id:keephq-sandbox:keep"


def test_batched_array_gives_one_alert_each() -> None:
    alerts = datadog.normalise(load("custom_template_batch_handmade.json"), DELIVERY)
    assert len(alerts) == 3
    fired, export, recovered = alerts
    assert isinstance(fired, CanonicalAlert)
    assert isinstance(export, CanonicalAlert)
    assert isinstance(recovered, CanonicalAlert)
    assert fired.status is AlertStatus.FIRING
    assert fired.severity is Severity.CRITICAL
    assert fired.service == "checkout"
    assert fired.environment == "prod"
    assert fired.title == "Checkout 5xx rate on kube_deployment:checkout,kube_namespace:shop"
    assert fired.fingerprint == "datadog:5150:kube_deployment:checkout,kube_namespace:shop"
    assert fired.labels["team"] == "payments"
    # The recovery lists its scope tags in another order: same identity.
    assert recovered.status is AlertStatus.RESOLVED
    assert recovered.fingerprint == fired.fingerprint
    assert recovered.ended_at == ms(1733931000000)
    # An aggregation key wins over the monitor id.
    assert export.fingerprint == "datadog:9bd4ac313a4d1e8fae2482df7b77628"
    assert export.severity is Severity.LOW
    assert export.service == "exporter"
    assert export.title == "Nightly export lag"


def test_no_priority_derives_severity_and_reads_template_variables() -> None:
    alert = one(load("custom_template_no_priority_handmade.json"))
    assert alert.severity is Severity.MEDIUM  # alert_type warning
    assert alert.status is AlertStatus.FIRING
    assert alert.title == "Disk almost full on host:db-7,env:staging"
    assert alert.fingerprint == "datadog:4242:env:staging,host:db-7"
    assert alert.service == "billing-db"
    assert alert.environment == "staging"
    assert alert.resource == "db-7"
    assert alert.description == "Disk usage on db-7 is above 80%."
    assert alert.labels["datadog_metric"] == "system.disk.in_use"
    assert "datadog_priority" not in alert.labels
    assert alert.links == {
        "source": "https://app.datadoghq.com/event/event?id=7890000000000000001",
        "snapshot": "https://p.datadoghq.com/snapshot/view/dd-snapshots-prod/org_1/2024-12-11/abc.png",
    }


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("P1", Severity.CRITICAL),
        ("P2", Severity.HIGH),
        ("p3", Severity.MEDIUM),
        ("P4", Severity.LOW),
        ("P5", Severity.INFO),
    ],
)
def test_priority_table(priority: str, severity: Severity) -> None:
    body = {"title": "x", "alert_id": "1", "alert_priority": priority, "alert_type": "error"}
    assert one(body).severity is severity
    assert one({"title": f"[{priority}] [Triggered] x", "alert_id": "1"}).severity is severity


@pytest.mark.parametrize(
    ("fields", "severity"),
    [
        ({"alert_type": "error"}, Severity.HIGH),
        ({"alert_type": "warning"}, Severity.MEDIUM),
        ({"alert_type": "info"}, Severity.INFO),
        ({"alert_transition": "Triggered"}, Severity.HIGH),
        ({"alert_transition": "Warn"}, Severity.MEDIUM),
        ({"alert_transition": "No Data"}, Severity.MEDIUM),
        ({"alert_transition": "Recovered", "alert_type": "success"}, Severity.MEDIUM),
        ({"priority": "normal"}, Severity.MEDIUM),  # $PRIORITY is the event priority
        ({}, Severity.MEDIUM),
    ],
)
def test_derived_severity(fields: dict[str, str], severity: Severity) -> None:
    assert one({"title": "x", "alert_id": "1", **fields}).severity is severity


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"alert_transition": "Triggered"}, AlertStatus.FIRING),
        ({"alert_transition": "Re-Triggered"}, AlertStatus.FIRING),
        ({"alert_transition": "Warn"}, AlertStatus.FIRING),
        ({"alert_transition": "No Data"}, AlertStatus.FIRING),
        ({"alert_transition": "Renotify"}, AlertStatus.FIRING),
        ({"alert_transition": "Recovered"}, AlertStatus.RESOLVED),
        ({"status": "Recovered"}, AlertStatus.RESOLVED),
        ({"alert_type": "success"}, AlertStatus.RESOLVED),
        ({"alert_type": "error"}, AlertStatus.FIRING),
        ({"title": "[Recovered on {host:a}] x"}, AlertStatus.RESOLVED),
        ({"title": "[P3] [Re-Triggered] x"}, AlertStatus.FIRING),
        ({"alert_status": "cpu over host:a was > 1"}, AlertStatus.FIRING),
        ({}, AlertStatus.FIRING),
    ],
)
def test_status(fields: dict[str, str], status: AlertStatus) -> None:
    alert = one({"title": "x", "alert_id": "1", **fields})
    assert alert.status is status
    assert (alert.ended_at is not None) == (status is AlertStatus.RESOLVED)


def test_unexpanded_variables_and_null_strings_are_unset() -> None:
    alert = one(
        {
            "title": "[Triggered] x",
            "alert_id": "7",
            "alert_scope": "$ALERT_SCOPE",
            "hostname": "null",
            "date": "$DATE",
        }
    )
    assert alert.fingerprint == "datadog:7"
    assert alert.resource == ""
    assert alert.started_at == RECEIVED


def test_without_monitor_id_fingerprint_ignores_transition_and_time() -> None:
    fired = one({"title": "[P2] [Triggered on {host:a}] Disk full", "date": "1733930000000"})
    resolved = one({"title": "[P2] [Recovered on {host:a}] Disk full", "date": "1733939999000"})
    other = one({"title": "[P2] [Triggered on {host:b}] Disk full", "date": "1733930000000"})
    assert fired.fingerprint == resolved.fingerprint != other.fingerprint
    assert fired.fingerprint.startswith("datadog:h:")
    assert fired.source_ref == fired.fingerprint


@pytest.mark.parametrize(
    "payload",
    [
        {},
        [],
        {"foo": "bar"},
        {"receiver": "x", "status": "firing", "alerts": [], "title": "[FIRING:1] x"},
        {"title": "x", "ruleId": 1, "evalMatches": [], "state": "alerting"},
        {"action": "Create", "alert": {"alertId": "a", "message": "m"}},
        {"event": {"event_type": "incident.triggered", "data": {"title": "x"}}},
        [{"title": "x"}, "junk"],
        "text",
        42,
        None,
        {"title": "[Triggered]"},
    ],
)
def test_foreign_or_empty_payloads_are_payload_errors(payload: Any) -> None:
    with pytest.raises(PayloadError):
        datadog.normalise(payload, DELIVERY)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = [
    "title", "alert_id", "monitor_id", "alert_scope", "scopes", "tags", "date", "body",
    "alert_transition", "alert_type", "alert_priority", "severity", "aggreg_key", "org",
    "alert", "event", "hostname", "link", "status",
]  # fmt: skip
datadog_like = st.dictionaries(st.sampled_from(_KEYS), json_values, max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, datadog_like, st.lists(datadog_like, max_size=3)))
def test_normalise_never_raises_anything_but_payload_error(payload: Any) -> None:
    try:
        alerts = datadog.normalise(payload, DELIVERY)
    except PayloadError:
        return
    for alert in alerts:
        assert isinstance(alert, CanonicalAlert)
        assert alert.title
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())


def test_huge_and_odd_values_are_tolerated() -> None:
    alert = one(
        {
            "title": "[P1] " + "x" * 100_000,
            "alert_id": "9" * 500,
            "alert_scope": ",".join(f"k{i}:v{i}" for i in range(2000)),
            "tags": [None, {}, 3, "env:prod", "\ud800bad"],
            "body": "[Monitor Status](https://x/monitors/" + "1" * 10_000 + ")",
            "org": ["not", "a", "mapping"],
        }
    )
    assert len(alert.title) <= 1024
    assert alert.fingerprint.startswith("datadog:sha256:")
    assert alert.environment == "prod"


# --- auth ---------------------------------------------------------------------------


def recorded_headers(name: str) -> dict[str, str]:
    recorded = json.loads((FIXTURES / "datadog" / name).read_bytes())
    return {k.lower(): v for k, v in recorded["headers"].items()}


@pytest.mark.parametrize(
    "name",
    [
        "nudgebee_query_alert_triggered_default_payload",
        "nudgebee_error_tracking_recovered_default_payload",
    ],
)
def test_recorded_bearer_token_passes(name: str) -> None:
    headers = recorded_headers(f"{name}.headers.json")
    body = (FIXTURES / "datadog" / f"{name}.json").read_bytes()
    datadog.verify(headers, body, "MySuperSecretToken", 0.0)
    with pytest.raises(AuthError) as wrong:
        datadog.verify(headers, body, "another-secret", 0.0)
    assert wrong.value.reason == "signature_mismatch"


def test_token_header_and_missing_token() -> None:
    body = (FIXTURES / "datadog" / "keep_log_alert_triggered.json").read_bytes()
    datadog.verify({"x-dd0c-token": "s3cret"}, body, "s3cret", 0.0)
    with pytest.raises(AuthError) as wrong:
        datadog.verify({"x-dd0c-token": "nope"}, body, "s3cret", 0.0)
    assert wrong.value.reason == "signature_mismatch"
    with pytest.raises(AuthError) as missing:
        datadog.verify({"content-type": "application/json"}, body, "s3cret", 0.0)
    assert missing.value.reason == "missing_signature"


def test_module_contract() -> None:
    assert datadog.NAME == "datadog"
    assert datadog.DELIVERY_ID_HEADERS == ()


# --- the monitor's "Test Notifications" button ---------------------------------------


def _as_test(payload: dict[str, Any], title: str) -> dict[str, Any]:
    """``payload`` as the "Test Notifications" button sends it: ``[TEST]`` in the title
    and who ran the test in the message; the monitor id and group are the real ones."""
    body = payload["body"].replace(
        "%%%\n", "%%%\nTest notification triggered by ada@example.com.\n", 1
    )
    return {**payload, "title": title, "body": body}


@pytest.mark.parametrize(
    "title",
    [
        "[TEST] [Recovered on {service:keep-api-matvey-kuk-workflows-fix}] Error monitor",
        "[Recovered on {service:keep-api-matvey-kuk-workflows-fix}] [TEST] Error monitor",
    ],
)
def test_a_test_notification_is_its_own_alert(title: str) -> None:
    real = one(load("keep_log_alert_recovered.json"))
    test = one(_as_test(load("keep_log_alert_recovered.json"), title))
    assert test.fingerprint != real.fingerprint
    assert test.fingerprint == "datadog:test:160076582:service:keep-api-matvey-kuk-workflows-fix"
    assert test.status is AlertStatus.RESOLVED
    assert test.title == "[TEST] Error monitor on service:keep-api-matvey-kuk-workflows-fix"
    assert test.labels["datadog_test"] == "true"
    assert "datadog_test" not in real.labels


def test_a_test_notification_without_a_monitor_key_is_still_apart() -> None:
    payload = {"title": "[P2] [Triggered] Disk full", "body": "disk is full"}
    real = one(payload)
    test = one({**payload, "title": "[TEST] [P2] [Triggered] Disk full"})
    assert test.fingerprint != real.fingerprint
    assert (test.severity, test.status) == (Severity.HIGH, AlertStatus.FIRING)
