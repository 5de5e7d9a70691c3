import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Severity
from dd0c_alert.providers import opsgenie
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads"
RECEIVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
DELIVERY = Delivery(
    tenant_id="t1", provider="opsgenie", event_id="ev1", received_at=RECEIVED, headers={}
)
RELAY_ID = "7ec331d7-f5f3-4f78-a49c-2ad886df69fe-1593475564295"


def load(name: str) -> Any:
    return json.loads((FIXTURES / "opsgenie" / name).read_bytes())


def one(payload: Any) -> CanonicalAlert:
    [alert] = opsgenie.normalise(payload, DELIVERY)
    assert isinstance(alert, CanonicalAlert)
    return alert


REAL = {
    "relay_create_alert.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.MEDIUM,  # P3
        "title": "asdf",
        "service": "",
        "environment": "",
        "resource": "",
        "fingerprint": f"opsgenie:{RELAY_ID}",
        "source_ref": RELAY_ID,
        "started_at": datetime(2020, 6, 30, 0, 6, 4, 295000, tzinfo=UTC),
        "ended_at": None,
        "description": "",
        "labels": {
            "opsgenie_action": "Create",
            "opsgenie_tiny_id": "8",
            "opsgenie_priority": "P3",
            "opsgenie_team": "operations",
            "opsgenie_integration": "operations_Webhook_2",
        },
    },
    "watchops_addnote_alert_from_alertmanager.json": {
        "status": AlertStatus.FIRING,
        "severity": Severity.CRITICAL,  # P1
        "title": "[Prometheus]: [FIRING:1]  (NonCompletedDeletions lykon-service-0.8.3 app "
        "http-probe 10.0.3.129:9090 gdpr-deleter-srv gdpr gdpr-del",
        "service": "gdpr-deleter-srv",
        "environment": "",
        "resource": "gdpr-deleter-srv-app-965459dc4-x9dnd",
        "fingerprint": "opsgenie:94d30522a04f65515397ec16b26d4e0fee5946671e0c985ac07aca345aba1968",
        "source_ref": "f3efa74b-29cc-4a4f-9bb7-804d7c1be544-1639476708514",
        "started_at": datetime(2021, 12, 14, 10, 11, 48, 514000, tzinfo=UTC),
        "ended_at": None,
        "labels": {
            "opsgenie_action": "AddNote",
            "opsgenie_priority": "P1",
            "opsgenie_tiny_id": "444",
            "alertname": "NonCompletedDeletions",
            "namespace": "gdpr",
            "severity": "page",
            "service": "gdpr-deleter-srv",
        },
    },
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_fixture_fields(name: str) -> None:
    alert = one(load(name))
    expected = dict(REAL[name])
    labels = expected.pop("labels")
    assert alert.source == "opsgenie"
    assert alert.tenant_id == "t1"
    assert alert.received_at == RECEIVED
    for field, value in expected.items():
        assert getattr(alert, field) == value, field
    assert isinstance(labels, dict)
    for key, value in labels.items():
        assert alert.labels[key] == value, key
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())


def test_every_real_fixture_is_covered() -> None:
    files = {p.name for p in (FIXTURES / "opsgenie").glob("*.json") if "handmade" not in p.name}
    assert files == set(REAL)


def test_watchops_links_and_description() -> None:
    alert = one(load("watchops_addnote_alert_from_alertmanager.json"))
    assert alert.links == {
        "source": "http://kube-prometheus-kube-prome-alertmanager.monitoring:9093/#/alerts?receiver=opsgenie"
    }
    assert alert.description.startswith("There are 1 non-completed deletions in crm-srv")


def test_close_of_the_relay_alert_resolves_the_same_alert() -> None:
    created = one(load("relay_create_alert.json"))
    closed = one(load("relay_close_alert_handmade.json"))
    assert closed.status is AlertStatus.RESOLVED
    assert closed.fingerprint == created.fingerprint
    assert closed.source_ref == created.source_ref
    assert closed.started_at == created.started_at
    # updatedAt is in nanoseconds: 1593476464295000000 -> 2020-06-30T00:21:04.295Z
    assert closed.ended_at == datetime(2020, 6, 30, 0, 21, 4, 295000, tzinfo=UTC)
    assert closed.severity is Severity.MEDIUM
    assert closed.labels["opsgenie_action"] == "Close"
    assert closed.title == "asdf"


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("Create", AlertStatus.FIRING),
        ("Acknowledge", AlertStatus.FIRING),
        ("UnAcknowledge", AlertStatus.FIRING),
        ("AddNote", AlertStatus.FIRING),
        ("Escalate", AlertStatus.FIRING),
        ("AssignOwnership", AlertStatus.FIRING),
        ("TakeOwnership", AlertStatus.FIRING),
        ("AddTags", AlertStatus.FIRING),
        ("RemoveTags", AlertStatus.FIRING),
        ("AddRecipient", AlertStatus.FIRING),
        ("AddTeam", AlertStatus.FIRING),
        ("Snooze", AlertStatus.FIRING),
        ("CustomAction", AlertStatus.FIRING),
        ("SomethingNew", AlertStatus.FIRING),
        ("Close", AlertStatus.RESOLVED),
        ("Delete", AlertStatus.RESOLVED),
    ],
)
def test_every_action_updates_the_same_alert(action: str, status: AlertStatus) -> None:
    payload = copy.deepcopy(load("relay_create_alert.json"))
    payload["action"] = action
    alert = one(payload)
    assert alert.status is status
    assert alert.fingerprint == f"opsgenie:{RELAY_ID}"
    assert alert.labels["opsgenie_action"] == action
    assert (alert.ended_at is not None) == (status is AlertStatus.RESOLVED)


def test_alert_marked_closed_is_resolved_whatever_the_action() -> None:
    payload = copy.deepcopy(load("relay_create_alert.json"))
    payload["action"] = "AddNote"
    payload["alert"]["status"] = "closed"
    assert one(payload).status is AlertStatus.RESOLVED


@pytest.mark.parametrize(
    ("priority", "severity"),
    [
        ("P1", Severity.CRITICAL),
        ("P2", Severity.HIGH),
        ("P3", Severity.MEDIUM),
        ("P4", Severity.LOW),
        ("P5", Severity.INFO),
        ("P9", Severity.MEDIUM),
        (None, Severity.MEDIUM),
    ],
)
def test_priority_table(priority: str | None, severity: Severity) -> None:
    payload = copy.deepcopy(load("relay_create_alert.json"))
    payload["alert"]["priority"] = priority
    assert one(payload).severity is severity


def test_alias_else_alert_id() -> None:
    payload = copy.deepcopy(load("relay_create_alert.json"))
    payload["alert"]["alias"] = "db-7-disk"
    assert one(payload).fingerprint == "opsgenie:db-7-disk"
    assert one(payload).source_ref == RELAY_ID
    del payload["alert"]["alias"]
    assert one(payload).fingerprint == f"opsgenie:{RELAY_ID}"


def test_entity_tags_and_details_give_resource_service_environment() -> None:
    payload = {
        "action": "Create",
        "alert": {
            "alertId": "a1",
            "message": "Disk full",
            "entity": "db-7",
            "tags": ["env:staging", "service:billing", "critical"],
            "details": {"runbook_url": "https://runbooks.example.com/disk"},
            "createdAt": 1733930000000,
        },
    }
    alert = one(payload)
    assert (alert.service, alert.environment, alert.resource) == ("billing", "staging", "db-7")
    assert alert.labels["critical"] == ""
    assert alert.links == {"runbook": "https://runbooks.example.com/disk"}
    assert alert.started_at == datetime(2024, 12, 11, 15, 13, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    "payload",
    [
        {},
        [],
        [{"action": "Create", "alert": {"alertId": "a"}}],
        {"action": "Create"},
        {"action": "Create", "alert": "a"},
        {"action": "Create", "alert": {"message": "no id"}},
        {"alert": {"alertId": "a"}},
        {"title": "[Triggered] x", "alert_id": "1"},
        {"receiver": "x", "alerts": []},
        "text",
        None,
    ],
)
def test_foreign_payloads_are_payload_errors(payload: Any) -> None:
    with pytest.raises(PayloadError):
        opsgenie.normalise(payload, DELIVERY)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_ALERT_KEYS = [
    "alertId", "alias", "message", "tags", "tinyId", "entity", "createdAt", "updatedAt",
    "description", "details", "priority", "source", "team", "status", "username",
]  # fmt: skip
opsgenie_like = st.fixed_dictionaries(
    {
        "action": st.one_of(st.sampled_from(["Create", "Close", "AddNote"]), json_values),
        "alert": st.one_of(
            st.dictionaries(st.sampled_from(_ALERT_KEYS), json_values, max_size=10), json_values
        ),
    },
    optional={"integrationName": json_values, "source": json_values},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, opsgenie_like))
def test_normalise_never_raises_anything_but_payload_error(payload: Any) -> None:
    try:
        alerts = opsgenie.normalise(payload, DELIVERY)
    except PayloadError:
        return
    [alert] = alerts
    assert isinstance(alert, CanonicalAlert)
    assert alert.title
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in alert.labels.items())


def test_absurd_timestamps_fall_back_to_received_at() -> None:
    payload = {
        "action": "Close",
        "alert": {"alertId": "a", "createdAt": 10**30, "updatedAt": -5, "message": "x" * 10_000},
    }
    alert = one(payload)
    assert alert.started_at == RECEIVED
    assert alert.ended_at == RECEIVED
    assert len(alert.title) <= 1024


# --- auth ---------------------------------------------------------------------------


def test_token_auth() -> None:
    body = (FIXTURES / "opsgenie" / "relay_create_alert.json").read_bytes()
    opsgenie.verify({"authorization": "Bearer s3cret"}, body, "s3cret", 0.0)
    opsgenie.verify({"x-dd0c-token": "s3cret"}, body, "s3cret", 0.0)
    with pytest.raises(AuthError) as wrong:
        opsgenie.verify({"x-dd0c-token": "nope"}, body, "s3cret", 0.0)
    assert wrong.value.reason == "signature_mismatch"
    with pytest.raises(AuthError) as missing:
        opsgenie.verify({}, body, "s3cret", 0.0)
    assert missing.value.reason == "missing_signature"


def test_module_contract() -> None:
    assert opsgenie.NAME == "opsgenie"
    assert opsgenie.DELIVERY_ID_HEADERS == ()
