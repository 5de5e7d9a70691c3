import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.providers import alertmanager, grafana
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "grafana"
RECEIVED = datetime(2026, 5, 5, 13, 5, tzinfo=UTC)

SIGNED = "grafana_signed_nodata_handmade.json"
SIGNED_META = json.loads((FIXTURES / "grafana_signed_nodata_handmade.headers.json").read_bytes())
VECTOR = SIGNED_META["signature"]
STAMP = SIGNED_META["headers"]["X-Grafana-Alerting-Timestamp"]
SIGNED_AT = float(STAMP)


def delivery(tenant: str = "t1") -> Delivery:
    return Delivery(
        tenant_id=tenant, provider="grafana", event_id="e1", received_at=RECEIVED, headers={}
    )


def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def alerts(payload: Any) -> list[CanonicalAlert]:
    result = grafana.normalise(payload, delivery())
    assert all(isinstance(alert, CanonicalAlert) for alert in result)
    return [alert for alert in result if isinstance(alert, CanonicalAlert)]


def signed_headers(signature: str, stamp: str | None = STAMP) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-grafana-alerting-signature": signature}
    if stamp is not None:
        headers["x-grafana-alerting-timestamp"] = stamp
    return headers


# --- real fixture ------------------------------------------------------------------------


def test_grafana12_test_notification_real() -> None:
    [alert] = alerts(load("keep_grafana12_test_notification.json"))
    assert alert.source == "grafana"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.MEDIUM  # no severity label
    assert alert.title == "TEST"
    assert alert.description == "Test Description\n\nValues: [ var='B' value=22 ]"
    assert alert.service == ""  # none of the service labels is set
    assert alert.resource == "Grafana"
    assert alert.fingerprint == "grafana:c4edaaf9f9f839b0"
    assert alert.source_ref == "c4edaaf9f9f839b0"
    assert alert.started_at == datetime(2026, 5, 5, 13, 4, 57, 622813, tzinfo=UTC)
    assert alert.ended_at is None
    assert alert.labels == {
        "alertname": "TestAlert",
        "grafana_folder": "Test Folder",
        "instance": "Grafana",
    }
    assert alert.links == {
        "source": "https://grafana.example.com/?orgId=1",  # relative, joined to externalURL
        "silence": "https://grafana.example.com/alerting/silence/new",
        "dashboard": "https://grafana.example.com/d/dashboard_uid",
        "panel": "https://grafana.example.com/d/dashboard_uid?viewPanel=1",
    }


# --- hand-made pair ------------------------------------------------------------------------


def test_firing_and_resolved_pair() -> None:
    [firing] = alerts(load("grafana_firing_handmade.json"))
    [resolved] = alerts(load("grafana_resolved_handmade.json"))
    assert firing.status is AlertStatus.FIRING
    assert resolved.status is AlertStatus.RESOLVED
    for alert in (firing, resolved):
        assert alert.source == "grafana"
        assert alert.severity is Severity.CRITICAL
        assert alert.title == "checkout-api error rate above 5%"
        assert alert.service == "checkout-api"
        assert alert.environment == "production"
        assert alert.resource == "checkout-api-7d9f6c5b8-2lq4z:8080"
        assert alert.fingerprint == "grafana:a3c5e1f0b2d49687"
        assert alert.started_at == datetime(2025, 5, 6, 12, 0, tzinfo=UTC)
        assert alert.labels["grafana_folder"] == "Checkout"
        assert alert.links["runbook"].endswith("/checkout-api/high-error-rate")
        assert alert.links["dashboard"] == "https://grafana.example.com/d/checkout-slo?orgId=1"
        assert alert.links["panel"].endswith("viewPanel=4")
        assert alert.links["silence"].startswith("https://grafana.example.com/alerting/silence/")
    assert firing.ended_at is None
    assert resolved.ended_at == datetime(2025, 5, 6, 12, 25, tzinfo=UTC)


def test_values_never_change_identity_without_grafana_fingerprint() -> None:
    firing, resolved = load("grafana_firing_handmade.json"), load("grafana_resolved_handmade.json")
    for payload in (firing, resolved):
        del payload["alerts"][0]["fingerprint"]
    [a] = alerts(firing)
    [b] = alerts(resolved)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint.startswith("grafana:h:")
    # Same labels through the alertmanager endpoint: a different source, a different identity.
    [via_am] = alertmanager.normalise(firing, delivery())
    assert via_am.fingerprint != a.fingerprint


def test_signed_body_normalises() -> None:
    [alert] = alerts(load(SIGNED))
    assert alert.title == "No data: API latency p99"
    assert alert.service == "api-gateway"
    assert alert.severity is Severity.MEDIUM
    assert alert.fingerprint == "grafana:0f1e2d3c4b5a6978"
    assert "dashboard" not in alert.links  # empty dashboardURL is no link


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("DatasourceNoData", "No data: API latency p99"),
        ("DatasourceError", "Query failed: API latency p99"),
    ],
)
def test_a_rule_that_was_not_evaluated_is_titled_by_the_rule(name: str, title: str) -> None:
    """Grafana names such alerts DatasourceNoData / DatasourceError and keeps the rule's
    title in ``rulename``; the rule's own summary describes a condition nobody could
    evaluate. The alert name stays the title when there is no rule name."""
    payload = load(SIGNED)
    payload["alerts"][0]["labels"]["alertname"] = name
    payload["alerts"][0]["annotations"] = {"summary": "p99 latency above 500 ms"}
    [alert] = alerts(payload)
    assert alert.title == title
    del payload["alerts"][0]["labels"]["rulename"]
    [alert] = alerts(payload)
    assert alert.title == "p99 latency above 500 ms"


def test_the_values_the_rule_saw_are_in_the_description() -> None:
    payload = load("grafana_firing_handmade.json")
    payload["alerts"][0]["valueString"] = "[ var='B' labels={instance=web-1} value=93.2 ]"
    payload["alerts"][0]["annotations"] = {}
    [alert] = alerts(payload)
    assert alert.description == "Values: [ var='B' labels={instance=web-1} value=93.2 ]"


def test_legacy_grafana_alerting_is_a_clear_payload_error() -> None:
    legacy = {
        "dashboardId": 1,
        "evalMatches": [{"value": 100, "metric": "High value", "tags": None}],
        "message": "Someone is testing the alert notification within Grafana.",
        "orgId": 0,
        "panelId": 1,
        "ruleId": 0,
        "ruleName": "Test notification",
        "ruleUrl": "https://grafana.example.com/",
        "state": "alerting",
        "tags": {},
        "title": "[Alerting] Test notification",
    }
    with pytest.raises(PayloadError, match="legacy Grafana alerting"):
        grafana.normalise(legacy, delivery())


@pytest.mark.parametrize("payload", [None, [], "x", {}, {"alerts": []}, {"alerts": ["x"]}])
def test_foreign_json_is_a_payload_error(payload: Any) -> None:
    with pytest.raises(PayloadError):
        grafana.normalise(payload, delivery())


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
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["firing", "resolved", "?orgId=1", "https://g.example/d/x"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
ALERT = st.dictionaries(
    st.sampled_from(ALERT_FIELDS),
    JSON,
    max_size=8,
)
PAYLOAD = st.fixed_dictionaries(
    {"alerts": st.lists(ALERT | JSON, max_size=3)},
    optional={"externalURL": JSON, "truncatedAlerts": JSON, "ruleId": JSON, "state": JSON},
)


@settings(max_examples=300, deadline=None)
@given(payload=JSON | PAYLOAD)
def test_any_json_normalises_or_raises_payload_error(payload: Any) -> None:
    try:
        result = grafana.normalise(copy.deepcopy(payload), delivery())
    except PayloadError:
        return
    assert all(isinstance(alert, CanonicalAlert) for alert in result)


# --- auth -------------------------------------------------------------------------------


def test_recorded_vector_matches_grafana_scheme() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    secret = VECTOR["secret"].encode()
    with_stamp = hmac.new(secret, STAMP.encode() + b":" + body, hashlib.sha256).hexdigest()
    body_only = hmac.new(secret, body, hashlib.sha256).hexdigest()
    assert with_stamp == VECTOR["valid_signature"]
    assert body_only == VECTOR["valid_signature_without_timestamp_header"]


def test_signed_request_passes() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    headers = {name.lower(): value for name, value in SIGNED_META["headers"].items()}
    grafana.verify(headers, body, VECTOR["secret"], SIGNED_AT + 42)


def test_signature_without_timestamp_header_covers_the_body() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    headers = signed_headers(VECTOR["valid_signature_without_timestamp_header"], stamp=None)
    grafana.verify(headers, body, VECTOR["secret"], 0.0)
    # The timestamped signature does not verify once the timestamp header is dropped.
    with pytest.raises(AuthError) as caught:
        grafana.verify(signed_headers(VECTOR["valid_signature"], None), body, VECTOR["secret"], 0)
    assert caught.value.reason == "signature_mismatch"


def test_wrong_secret_is_a_mismatch() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    with pytest.raises(AuthError) as caught:
        grafana.verify(signed_headers(VECTOR["valid_signature"]), body, "wrong", SIGNED_AT)
    assert caught.value.reason == "signature_mismatch"


def test_tampered_body_is_a_mismatch() -> None:
    body = (FIXTURES / SIGNED).read_bytes().replace(b"api-gateway", b"api-gatewaz")
    with pytest.raises(AuthError) as caught:
        grafana.verify(signed_headers(VECTOR["valid_signature"]), body, VECTOR["secret"], SIGNED_AT)
    assert caught.value.reason == "signature_mismatch"


@pytest.mark.parametrize("age", [301.0, -301.0, 86400.0])
def test_stale_timestamp_is_rejected(age: float) -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    with pytest.raises(AuthError) as caught:
        grafana.verify(
            signed_headers(VECTOR["valid_signature"]), body, VECTOR["secret"], SIGNED_AT + age
        )
    assert caught.value.reason == "timestamp_expired"


def test_missing_signature_and_token() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    for headers in ({}, {"x-grafana-alerting-timestamp": STAMP}, signed_headers("  ")):
        with pytest.raises(AuthError) as caught:
            grafana.verify(headers, body, VECTOR["secret"], SIGNED_AT)
        assert caught.value.reason == "missing_signature"


def test_token_fallback_without_signature() -> None:
    body = (FIXTURES / SIGNED).read_bytes()
    grafana.verify({"authorization": "Bearer s3cret"}, body, "s3cret", 0.0)
    with pytest.raises(AuthError) as caught:
        grafana.verify({"authorization": "Bearer nope"}, body, "s3cret", 0.0)
    assert caught.value.reason == "signature_mismatch"


def test_module_contract() -> None:
    assert grafana.NAME == "grafana"
    assert grafana.DELIVERY_ID_HEADERS == ()
    assert grafana.SEVERITIES["critical"] is Severity.CRITICAL
