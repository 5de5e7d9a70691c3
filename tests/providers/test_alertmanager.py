import base64
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.providers import alertmanager
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "alertmanager"
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SECRET = "am-token-123"


def delivery(tenant: str = "t1") -> Delivery:
    return Delivery(
        tenant_id=tenant, provider="alertmanager", event_id="e1", received_at=RECEIVED, headers={}
    )


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def alerts(payload: Any, tenant: str = "t1") -> list[CanonicalAlert]:
    result = alertmanager.normalise(payload, delivery(tenant))
    assert all(isinstance(alert, CanonicalAlert) for alert in result)
    return [alert for alert in result if isinstance(alert, CanonicalAlert)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- real fixtures -----------------------------------------------------------------------


def test_vmalertmanager_firing_real() -> None:
    [alert] = alerts(load("vmalertmanager_cputhrottling_firing_real.json"))
    assert alert.source == "alertmanager"
    assert alert.tenant_id == "t1"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.INFO
    assert alert.title == "Processes experience elevated CPU throttling."
    assert alert.description.startswith("55.97% throttling of CPU in namespace victoria")
    assert alert.service == "alertmanager"  # container label
    assert alert.environment == "cluster-name"  # cluster is the environment fallback
    assert alert.resource == "vmalertmanager-victoria-victoria-metrics-k8s-stack-0"
    assert alert.fingerprint == "alertmanager:1e6df20d7ad22b17"
    assert alert.source_ref == "1e6df20d7ad22b17"
    assert alert.started_at == at("2025-04-14T15:24:15")
    assert alert.received_at == RECEIVED
    assert alert.ended_at is None  # Go zero time, and firing anyway
    assert alert.labels["alertname"] == "CPUThrottlingHigh"
    assert alert.labels["namespace"] == "victoria"
    assert alert.labels["severity"] == "info"
    assert alertmanager.TRUNCATED_LABEL not in alert.labels
    assert alert.links == {
        "source": "http://vmalert-victoria-victoria-metrics-k8s-stack-78497f95cf-xsg6v:8080"
        "/vmalert/alert?group_id=16761697894879140610&alert_id=1493036818384931702",
        "runbook": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/cputhrottlinghigh",
    }


def test_prometheus_operator_resolved_real() -> None:
    [alert] = alerts(load("prometheus_operator_cputhrottling_resolved_real.json"))
    assert alert.source == "alertmanager"
    assert alert.status is AlertStatus.RESOLVED
    assert alert.severity is Severity.MEDIUM  # warning
    assert alert.title == "CPU throttling"
    assert alert.description.startswith("27% throttling of CPU in namespace monitoring")
    assert alert.service == "config-reloader"  # legacy cAdvisor container_name
    assert alert.environment == ""
    assert alert.resource == "alertmanager-ot-mon-prometheus-operator-alertmanager-0"
    assert alert.fingerprint == "alertmanager:dd19ae3d4e06ac55"
    assert alert.source_ref == "dd19ae3d4e06ac55"
    assert alert.started_at == datetime(2019, 1, 28, 20, 26, 23, 868893, tzinfo=UTC)
    assert alert.ended_at == datetime(2019, 1, 28, 20, 27, 23, 868893, tzinfo=UTC)
    assert alert.labels["alertname"] == "CPUThrottlingHigh"
    assert alert.labels["prometheus"] == "monitoring/ot-mon-prometheus-operator-prometheus"
    assert alert.labels["severity"] == "warning"
    assert alert.links["source"].startswith("http://ot-mon-prometheus-operator-prometheus")
    assert "&g0.tab=1" in alert.links["source"]
    assert alert.links["runbook"].endswith("#alert-name-cputhrottlinghigh")


def test_firing_and_resolve_share_fingerprint() -> None:
    [firing] = alerts(load("vmalertmanager_cputhrottling_firing_real.json"))
    [resolved] = alerts(load("vmalertmanager_cputhrottling_resolved_handmade.json"))
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == firing.fingerprint
    assert resolved.source_ref == firing.source_ref
    assert resolved.started_at == firing.started_at
    assert resolved.ended_at == at("2025-04-14T15:39:15")


# --- groups ------------------------------------------------------------------------------


def test_grouped_firing_yields_one_alert_each() -> None:
    result = alerts(load("am_group_firing_3_alerts_handmade.json"))
    assert [a.service for a in result] == ["checkout", "payments", "cart"]
    assert [a.fingerprint for a in result] == [
        "alertmanager:4a1b2c3d4e5f6071",
        "alertmanager:5b2c3d4e5f607182",
        "alertmanager:6c3d4e5f60718293",
    ]
    assert {a.status for a in result} == {AlertStatus.FIRING}
    assert {a.severity for a in result} == {Severity.MEDIUM}
    assert {a.title for a in result} == {"Pod is crash looping."}
    assert {a.environment for a in result} == {"production"}
    assert result[1].resource == "payments-5d8b7c6f9-q7w3e"
    # Go's nanoseconds are cut to microseconds, not rejected.
    assert result[0].started_at == datetime(2025, 5, 6, 9, 58, 30, 123456, tzinfo=UTC)
    assert result[0].labels["job"] == "kube-state-metrics"


def test_partially_resolved_group_keeps_each_alert_status() -> None:
    before = alerts(load("am_group_firing_3_alerts_handmade.json"))
    after = alerts(load("am_group_partially_resolved_handmade.json"))
    assert [a.status for a in after] == [
        AlertStatus.RESOLVED,
        AlertStatus.FIRING,
        AlertStatus.FIRING,
    ]
    assert [a.fingerprint for a in after] == [a.fingerprint for a in before]
    assert after[0].ended_at == at("2025-05-06T10:12:30")
    assert after[1].ended_at is None


def test_truncated_group_is_recorded_on_each_alert() -> None:
    result = alerts(load("am_group_truncated_handmade.json"))
    assert len(result) == 2
    assert [a.labels[alertmanager.TRUNCATED_LABEL] for a in result] == ["5", "5"]
    assert [a.resource for a in result] == ["node-1:9100", "node-2:9100"]
    assert result[0].service == "node-exporter"
    assert result[0].severity is Severity.CRITICAL


def test_truncation_count_does_not_change_identity() -> None:
    payload = load("am_group_truncated_handmade.json")
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    first = alerts(payload)
    payload["truncatedAlerts"] = 9
    again = alerts(payload)
    payload["truncatedAlerts"] = 0
    untruncated = alerts(payload)
    assert [a.fingerprint for a in first] == [a.fingerprint for a in again]
    assert [a.fingerprint for a in first] == [a.fingerprint for a in untruncated]
    assert alertmanager.TRUNCATED_LABEL not in untruncated[0].labels


# --- fingerprint without Alertmanager's own ------------------------------------------------


def _without_fingerprints(name: str) -> Any:
    payload = load(name)
    for alert in payload["alerts"]:
        del alert["fingerprint"]
    return payload


def test_computed_fingerprint_is_stable_across_firing_and_resolve() -> None:
    firing = alerts(_without_fingerprints("am_group_firing_3_alerts_handmade.json"))
    later = _without_fingerprints("am_group_partially_resolved_handmade.json")
    later["alerts"][0]["startsAt"] = "2025-05-06T10:00:00Z"
    later["alerts"][0]["annotations"]["description"] = "changed text"
    resolved = alerts(later)
    assert [a.fingerprint for a in resolved] == [a.fingerprint for a in firing]
    assert len({a.fingerprint for a in firing}) == 3
    assert all(a.fingerprint.startswith("alertmanager:h:") for a in firing)
    assert resolved[0].source_ref == resolved[0].fingerprint


def test_computed_fingerprint_uses_whole_label_set_and_tenant() -> None:
    payload = _without_fingerprints("vmalertmanager_cputhrottling_firing_real.json")
    [base] = alerts(payload)
    [other_tenant] = alerts(payload, tenant="t2")
    payload["alerts"][0]["labels"]["severity"] = "critical"
    [other_labels] = alerts(payload)
    assert base.fingerprint != other_tenant.fingerprint
    assert base.fingerprint != other_labels.fingerprint


# --- severity, status, fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("page", Severity.CRITICAL),
        ("URGENT", Severity.CRITICAL),
        ("error", Severity.HIGH),
        ("warning", Severity.MEDIUM),
        ("ticket", Severity.LOW),
        ("info", Severity.INFO),
        ("none", Severity.INFO),
        ("whatever", Severity.MEDIUM),
        (None, Severity.MEDIUM),
    ],
)
def test_severity_table(value: str | None, expected: Severity) -> None:
    payload = load("vmalertmanager_cputhrottling_firing_real.json")
    labels = payload["alerts"][0]["labels"]
    del labels["severity"]
    if value is not None:
        labels["severity"] = value
    [alert] = alerts(payload)
    assert alert.severity is expected


def test_missing_alert_status_falls_back_to_group_status() -> None:
    payload = load("prometheus_operator_cputhrottling_resolved_real.json")
    del payload["alerts"][0]["status"]
    [alert] = alerts(payload)
    assert alert.status is AlertStatus.RESOLVED
    del payload["status"]
    [alert] = alerts(payload)
    assert alert.status is AlertStatus.FIRING
    assert alert.ended_at is None


def test_resolved_without_end_time_ends_when_received() -> None:
    payload = load("prometheus_operator_cputhrottling_resolved_real.json")
    payload["alerts"][0]["endsAt"] = "0001-01-01T00:00:00Z"
    del payload["alerts"][0]["startsAt"]
    [alert] = alerts(payload)
    assert alert.ended_at == RECEIVED
    assert alert.started_at == RECEIVED


def test_title_falls_back_to_alertname_then_source() -> None:
    payload = load("prometheus_operator_cputhrottling_resolved_real.json")
    payload["alerts"][0]["annotations"] = {}
    [alert] = alerts(payload)
    assert alert.title == "CPUThrottlingHigh"
    assert alert.description == ""
    payload["alerts"][0]["labels"] = {"instance": "db-1"}
    [alert] = alerts(payload)
    assert alert.title == "alertmanager alert"
    assert alert.resource == "db-1"


def test_service_priority() -> None:
    payload = load("vmalertmanager_cputhrottling_firing_real.json")
    labels = payload["alerts"][0]["labels"]
    labels.update({"job": "kube-state-metrics", "app": "am", "service": "alerting"})
    assert alerts(payload)[0].service == "alerting"
    del labels["service"]
    assert alerts(payload)[0].service == "am"
    del labels["app"]
    assert alerts(payload)[0].service == "alertmanager"  # container before job
    del labels["container"]
    assert alerts(payload)[0].service == "kube-state-metrics"
    del labels["job"]
    assert alerts(payload)[0].service == "victoria"  # namespace, the last resort


def test_links_only_keep_web_urls() -> None:
    payload = load("vmalertmanager_cputhrottling_firing_real.json")
    alert = payload["alerts"][0]
    alert["annotations"]["runbook_url"] = "javascript:alert(1)"
    alert["annotations"]["dashboard_url"] = "https://grafana.example.com/d/abc"
    alert["generatorURL"] = "/graph?g0.expr=up"
    alert["silenceURL"] = "http://[::1"
    [result] = alerts(payload)
    assert result.links == {
        "source": "http://vmalertmanager-victoria-victoria-metrics-k8s-stack-0:9093/graph?g0.expr=up",
        "dashboard": "https://grafana.example.com/d/abc",
    }


def test_huge_and_odd_values_are_tolerated() -> None:
    payload = load("vmalertmanager_cputhrottling_firing_real.json")
    alert = payload["alerts"][0]
    alert["annotations"]["summary"] = "x" * 100_000
    alert["startsAt"] = 10**400
    alert["labels"]["pod"] = {"nested": ["junk"]}
    alert["generatorURL"] = "http://h/" + "a" * 100_000
    payload["truncatedAlerts"] = "1e400"
    [result] = alerts(payload)
    assert len(result.title) == 1024
    assert result.started_at == RECEIVED
    assert result.resource == ""  # pod was junk; no other resource label
    assert "source" not in result.links
    assert alertmanager.TRUNCATED_LABEL not in result.labels


# --- foreign and broken bodies ------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "text",
        42,
        [],
        [{"labels": {"alertname": "x"}}],
        {},
        {"alerts": None},
        {"alerts": {"labels": {}}},
        {"alerts": []},
        {"alerts": [1]},
        {"alerts": [{}]},
        {"alerts": [{"labels": {"alertname": "x"}, "status": "pending"}]},
        {"event_type": "incident.triggered", "data": {}},
    ],
)
def test_foreign_json_is_a_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError):
        alertmanager.normalise(payload, delivery())


ALERT_FIELDS = (
    "status",
    "labels",
    "annotations",
    "startsAt",
    "endsAt",
    "generatorURL",
    "fingerprint",
    "silenceURL",
    "dashboardURL",
    "panelURL",
    "imageURL",
    "values",
    "valueString",
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 0, -1])
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["firing", "resolved", "0001-01-01T00:00:00Z", "2025-01-01T00:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
ALERT_KEYS = st.sampled_from(ALERT_FIELDS)
ALERT = st.dictionaries(ALERT_KEYS, JSON, max_size=8)
PAYLOAD = st.fixed_dictionaries(
    {"alerts": st.lists(ALERT | JSON, max_size=3)},
    optional={"status": JSON, "truncatedAlerts": JSON, "externalURL": JSON, "version": JSON},
)


@settings(max_examples=300, deadline=None)
@given(payload=JSON | PAYLOAD)
def test_any_json_normalises_or_raises_payload_error(payload: Any) -> None:
    try:
        result = alertmanager.normalise(copy.deepcopy(payload), delivery())
    except PayloadError:
        return
    for alert in result:
        assert isinstance(alert, CanonicalAlert)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())
        assert alert.title


# --- auth -------------------------------------------------------------------------------


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {SECRET}"},
        {"authorization": _basic("alertmanager", SECRET)},
        {"x-dd0c-token": SECRET},
    ],
)
def test_verify_accepts_the_token(headers: dict[str, str]) -> None:
    alertmanager.verify(headers, b"{}", SECRET, 0.0)


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer wrong"},
        {"authorization": _basic("alertmanager", "wrong")},
        {"x-dd0c-token": "wrong"},
    ],
)
def test_verify_rejects_a_wrong_token(headers: dict[str, str]) -> None:
    with pytest.raises(AuthError) as caught:
        alertmanager.verify(headers, b"{}", SECRET, 0.0)
    assert caught.value.reason == "signature_mismatch"


def test_verify_requires_a_token() -> None:
    with pytest.raises(AuthError) as caught:
        alertmanager.verify({"content-type": "application/json"}, b"{}", SECRET, 0.0)
    assert caught.value.reason == "missing_signature"


def test_module_contract() -> None:
    assert alertmanager.NAME == "alertmanager"
    assert alertmanager.DELIVERY_ID_HEADERS == ()


def test_links_are_cached_only_when_short() -> None:
    """Links repeat across a group's alerts and are cached; a long one (the sender's
    choice) is checked the same way, uncached, so it cannot fill the cache's memory."""
    long_url = "https://prometheus.example.com/graph?g0.expr=" + "a" * 2_000
    before = alertmanager._web_url.cache_info().currsize
    assert alertmanager.link(long_url) == long_url
    assert alertmanager.link("javascript:" + "a" * 2_000) == ""
    assert alertmanager._web_url.cache_info().currsize == before
    assert alertmanager.link("/graph?g0.expr=up", "http://am:9093") == (
        "http://am:9093/graph?g0.expr=up"
    )
    assert alertmanager._web_url.cache_info().currsize <= before + 1
