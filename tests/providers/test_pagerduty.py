import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from junk import JUNK, paths, replaced

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.providers import pagerduty
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "pagerduty"
RECEIVED = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
NOW = RECEIVED.timestamp()


def _delivery() -> Delivery:
    return Delivery(
        tenant_id="t1", provider="pagerduty", event_id="e1", received_at=RECEIVED, headers={}
    )


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def _alert(name: str) -> CanonicalAlert:
    records = pagerduty.normalise(_load(name), _delivery())
    assert len(records) == 1
    record = records[0]
    assert isinstance(record, CanonicalAlert)
    return record


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- real fixtures ---------------------------------------------------------------


def test_triggered_via_events_api() -> None:
    alert = _alert("v3_incident_triggered_via_events_api.json")
    assert alert.source == "pagerduty"
    assert alert.source_ref == "QEXAMPLE1"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.HIGH  # no priority: urgency high
    assert alert.title == "up rule triggered on nn"
    assert alert.service == "Test-Service"
    assert alert.fingerprint == "pagerduty:QEXAMPLE1"
    assert alert.started_at == _at("2025-01-24T07:10:05+00:00")
    assert alert.ended_at is None
    assert alert.labels["pagerduty_event_type"] == "incident.triggered"
    assert alert.labels["pagerduty_incident_number"] == "7"
    assert alert.labels["urgency"] == "high"
    assert alert.labels["client"] == "Example Monitoring"
    assert alert.labels["assignees"] == "Test User"
    assert "priority" not in alert.labels
    assert alert.links["source"] == "https://example-inc.pagerduty.com/incidents/QEXAMPLE1"
    assert alert.links["client"].startswith("https://monitoring.example.com/v2/organizations/")


def test_resolved() -> None:
    alert = _alert("v3_incident_resolved.json")
    assert alert.source == "pagerduty"
    assert alert.status is AlertStatus.RESOLVED
    assert alert.severity is Severity.HIGH
    assert alert.title == "NGINXTooMany400s triggered on nudgebee-api-alerts"
    assert alert.service == "Test-Service"
    assert alert.fingerprint == "pagerduty:QEXAMPLE1"
    # A resolve starts at its own time (a reopened incident's resolve must end the
    # reopened occurrence); the incident's creation is kept as a label.
    assert alert.started_at == _at("2025-02-15T14:42:34.992+00:00")
    assert alert.labels["pagerduty_created_at"] == "2025-02-12T10:15:08Z"
    assert alert.ended_at == _at("2025-02-15T14:42:34.992+00:00")
    assert alert.labels["pagerduty_event_type"] == "incident.resolved"
    assert alert.labels["pagerduty_status"] == "resolved"
    assert alert.labels["escalation_policy"] == "Default"
    # The publisher scrubbed ids inconsistently: data.id is QEXAMPLE1, html_url says QEXAMPLE2.
    assert alert.links == {"source": "https://example-inc.pagerduty.com/incidents/QEXAMPLE2"}


def test_real_triggered_and_resolved_share_the_incident_fingerprint() -> None:
    triggered = _alert("v3_incident_triggered_via_events_api.json")
    resolved = _alert("v3_incident_resolved.json")
    assert triggered.fingerprint == resolved.fingerprint == "pagerduty:QEXAMPLE1"


def test_triggered_chronosphere() -> None:
    alert = _alert("v3_incident_triggered_chronosphere.json")
    assert alert.source == "pagerduty"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.HIGH
    assert alert.title.startswith("[Critical] Critical | Staging | AWS INF | SQS |")
    assert alert.title.endswith('tag_env="staging"}')
    assert alert.service == "SRE-OTR-FTL"
    assert alert.fingerprint == "pagerduty:Q2X369CTEOAGYM"
    assert alert.source_ref == "Q2X369CTEOAGYM"
    assert alert.started_at == _at("2025-08-02T05:33:07+00:00")
    assert alert.labels["client"] == "Chronosphere"
    assert alert.labels["teams"] == "OTR-Team"
    assert alert.labels["escalation_policy"] == "OTR-LTL-New_Merge"
    assert alert.labels["pagerduty_incident_number"] == "320624"
    assert alert.links["client"].startswith("https://example.chronosphere.io/monitors/")


def test_triggered_no_client() -> None:
    alert = _alert("v3_incident_triggered_no_client.json")
    assert alert.source == "pagerduty"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.HIGH
    assert alert.title == (
        "ALARM: CRITICAL | AWS APP | ELB | mm-carrier-updates-worker-stg-al2-r2..."
        " in US East (N. Virginia)"
    )
    assert alert.service == "Event_Catchall_ocean"
    assert alert.fingerprint == "pagerduty:Q19Z7CCJDTBD40"
    assert alert.started_at == _at("2025-08-02T15:45:53+00:00")
    assert alert.labels["teams"] == "ISBU-Ocean"
    assert alert.labels["service_id"] == "PZ55WG8"
    assert "client" not in alert.labels
    assert set(alert.links) == {"source"}


def test_priority_updated_uses_priority_over_urgency() -> None:
    alert = _alert("v3_incident_priority_updated_signed.json")
    assert alert.source == "pagerduty"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.CRITICAL  # P1 wins over urgency high
    assert alert.title == "A little bump in the road"
    assert alert.service == "API Service"
    assert alert.fingerprint == "pagerduty:PGR0VU2"
    # No created_at in this body: the event time is used.
    assert alert.started_at == _at("2021-04-26T17:36:27.458+00:00")
    assert alert.labels["priority"] == "P1"
    assert alert.labels["pagerduty_event_type"] == "incident.priority_updated"
    assert alert.labels["assignees"] == "User 123"
    assert alert.labels["teams"] == "Engineering"
    assert alert.links == {
        "source": "https://acme.pagerduty.com/incidents/PGR0VU2",
        "conference": "https://example.com",
    }


# --- hand-made lifecycle variants ------------------------------------------------


def test_chronosphere_trigger_and_handmade_resolve_share_fingerprint() -> None:
    triggered = _alert("v3_incident_triggered_chronosphere.json")
    resolved = _alert("v3_incident_resolved_chronosphere_handmade.json")
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.fingerprint == triggered.fingerprint
    assert resolved.started_at == resolved.ended_at
    assert resolved.ended_at == _at("2025-08-02T06:03:41.118+00:00")


def test_acknowledged_stays_firing_with_same_fingerprint() -> None:
    triggered = _alert("v3_incident_triggered_no_client.json")
    acked = _alert("v3_incident_acknowledged_no_client_handmade.json")
    assert acked.status is AlertStatus.FIRING
    assert acked.ended_at is None
    assert acked.fingerprint == triggered.fingerprint
    assert acked.labels["pagerduty_status"] == "acknowledged"


def test_incident_key_is_the_fingerprint_when_present() -> None:
    triggered = _alert("v3_incident_triggered_incident_key_handmade.json")
    resolved = _alert("v3_incident_resolved_incident_key_handmade.json")
    assert triggered.fingerprint == "pagerduty:db-primary/replication-lag"
    assert resolved.fingerprint == triggered.fingerprint
    assert triggered.source_ref == resolved.source_ref == "PGR0VU2"
    assert triggered.severity is resolved.severity is Severity.LOW  # urgency low, no priority
    assert resolved.status is AlertStatus.RESOLVED
    assert resolved.ended_at == _at("2021-04-26T18:02:11+00:00")
    assert triggered.labels["incident_key"] == "db-primary/replication-lag"


@pytest.mark.parametrize(
    "name",
    [
        "v3_incident_annotated_handmade.json",
        "v3_service_updated_handmade.json",
        "v3_pagey_ping_handmade.json",
    ],
)
def test_events_without_incident_state_are_ignored(name: str) -> None:
    assert pagerduty.normalise(_load(name), _delivery()) == []


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("incident.responder.added", {"type": "incident_responder", "incident": {"id": "P1"}}),
        ("incident.status_update_published", {"type": "incident_status_update"}),
        ("incident.workflow.started", {"type": "incident_workflow_instance", "id": "W1"}),
        ("service.created", {"type": "service", "id": "S1"}),
    ],
)
def test_other_real_event_types_are_ignored(event_type: str, data: dict[str, Any]) -> None:
    body = {"event": {"id": "x", "event_type": event_type, "data": data}}
    assert pagerduty.normalise(body, _delivery()) == []


def test_resolved_status_without_resolved_event_type_is_resolved() -> None:
    body = _load("v3_incident_priority_updated_signed.json")
    body["event"]["data"]["status"] = "resolved"
    assert _alert_from(body).status is AlertStatus.RESOLVED


def test_reopened_is_firing() -> None:
    body = _load("v3_incident_resolved_chronosphere_handmade.json")
    body["event"]["event_type"] = "incident.reopened"
    body["event"]["data"]["status"] = "triggered"
    assert _alert_from(body).status is AlertStatus.FIRING


def test_reopened_starts_when_it_was_reopened() -> None:
    """A reopen is a new occurrence: starting at the incident's creation, it would fold
    into the resolved occurrence as a late copy and the live incident stay resolved."""
    body = _load("v3_incident_resolved_chronosphere_handmade.json")
    body["event"]["event_type"] = "incident.reopened"
    body["event"]["occurred_at"] = "2025-08-02T07:15:00.000Z"
    body["event"]["data"]["status"] = "triggered"
    alert = _alert_from(body)
    assert alert.started_at == _at("2025-08-02T07:15:00+00:00")
    assert alert.labels["pagerduty_created_at"] == "2025-08-02T05:33:07Z"


@pytest.mark.parametrize(
    ("priority", "urgency", "expected"),
    [
        ("P1", "low", Severity.CRITICAL),
        ("P2", "low", Severity.HIGH),
        ("P3", "high", Severity.MEDIUM),
        ("P4", "high", Severity.LOW),
        ("P5", "high", Severity.INFO),
        ("SEV-2", "low", Severity.HIGH),
        ("Custom", "low", Severity.LOW),  # unknown priority: urgency decides
        (None, "high", Severity.HIGH),
        (None, "low", Severity.LOW),
        (None, None, Severity.MEDIUM),
        (None, "weird", Severity.MEDIUM),
    ],
)
def test_severity_table(priority: str | None, urgency: str | None, expected: Severity) -> None:
    body = _load("v3_incident_priority_updated_signed.json")
    data = body["event"]["data"]
    data["priority"] = {"summary": priority} if priority else None
    data["urgency"] = urgency
    assert _alert_from(body).severity is expected


def test_started_at_falls_back_to_received_at() -> None:
    body = {"event": {"event_type": "incident.triggered", "data": {"id": "Q1", "type": "incident"}}}
    alert = _alert_from(body)
    assert alert.started_at == RECEIVED
    assert alert.title == "Q1"


def _alert_from(body: Any) -> CanonicalAlert:
    [record] = pagerduty.normalise(body, _delivery())
    assert isinstance(record, CanonicalAlert)
    return record


# --- foreign and malformed bodies ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"event": "incident.trigger"}]}, "v2 webhook"),
        ({"alerts": []}, "no 'event' object"),
        ({"event": "incident.triggered"}, "'event' must be a JSON object"),
        ({"event": {"data": {}}}, "event_type"),
        ({"event": {"event_type": "user.created", "data": {}}}, "unsupported"),
        ({"event": {"event_type": "incident.triggered", "data": None}}, "neither"),
        ([], "body must be a JSON object"),
        ("text", "body must be a JSON object"),
    ],
)
def test_foreign_bodies_raise_payload_error(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        pagerduty.normalise(body, _delivery())


_BODIES = sorted(p.name for p in FIXTURES.glob("v3_*.json") if not p.name.endswith(".headers.json"))


@pytest.mark.parametrize("name", _BODIES)
def test_any_junk_in_any_field_raises_only_payload_error(name: str) -> None:
    document = _load(name)
    for path in paths(document):
        for junk in JUNK:
            try:
                records = pagerduty.normalise(replaced(document, path, junk), _delivery())
            except PayloadError:
                continue
            for record in records:
                assert isinstance(record, CanonicalAlert)
                assert all(
                    isinstance(k, str) and isinstance(v, str) for k, v in record.labels.items()
                )
                assert len(record.title) <= 1024


# --- signature ---------------------------------------------------------------------

_VECTOR = _load("v3_incident_priority_updated_signed.headers.json")
_SIGNED_BODY = (FIXTURES / "v3_incident_priority_updated_signed.json").read_bytes()
_SECRET = _VECTOR["signature"]["secret"]


def _headers(signature: str) -> dict[str, str]:
    return {"x-pagerduty-signature": signature, "x-webhook-id": _VECTOR["headers"]["X-Webhook-Id"]}


def test_recorded_signature_verifies() -> None:
    header = _VECTOR["headers"]["X-PagerDuty-Signature"]
    pagerduty.verify(_headers(header), _SIGNED_BODY, _SECRET, NOW)
    pagerduty.verify(_headers(_VECTOR["signature"]["valid_signature"]), _SIGNED_BODY, _SECRET, NOW)


def test_recorded_invalid_signature_is_rejected() -> None:
    invalid = _VECTOR["signature"]["invalid_signature_from_same_test"]
    with pytest.raises(AuthError) as caught:
        pagerduty.verify(_headers(invalid), _SIGNED_BODY, _SECRET, NOW)
    assert caught.value.reason == "signature_mismatch"


def test_wrong_secret_is_rejected() -> None:
    with pytest.raises(AuthError) as caught:
        pagerduty.verify(
            _headers(_VECTOR["signature"]["valid_signature"]), _SIGNED_BODY, "not-it", NOW
        )
    assert caught.value.reason == "signature_mismatch"


def test_altered_body_is_rejected() -> None:
    with pytest.raises(AuthError) as caught:
        pagerduty.verify(
            _headers(_VECTOR["signature"]["valid_signature"]), _SIGNED_BODY + b" ", _SECRET, NOW
        )
    assert caught.value.reason == "signature_mismatch"


def test_any_entry_matches_during_secret_rotation() -> None:
    valid = _VECTOR["signature"]["valid_signature"]
    invalid = _VECTOR["signature"]["invalid_signature_from_same_test"]
    pagerduty.verify(_headers(f"{invalid},{valid}"), _SIGNED_BODY, _SECRET, NOW)
    pagerduty.verify(_headers(f"{valid}, {invalid}"), _SIGNED_BODY, _SECRET, NOW)


@pytest.mark.parametrize("headers", [{}, {"x-pagerduty-signature": ""}, {"x-webhook-id": "x"}])
def test_missing_signature(headers: dict[str, str]) -> None:
    with pytest.raises(AuthError) as caught:
        pagerduty.verify(headers, _SIGNED_BODY, _SECRET, NOW)
    assert caught.value.reason == "missing_signature"


def test_delivery_id_header() -> None:
    assert pagerduty.NAME == "pagerduty"
    assert pagerduty.DELIVERY_ID_HEADERS == ("x-webhook-id",)
