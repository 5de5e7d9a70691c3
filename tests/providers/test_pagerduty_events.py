import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from junk import JUNK, paths, replaced

from dd0c_alert.domain.fingerprint import computed_fingerprint
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Normalised,
    Severity,
)
from dd0c_alert.providers import pagerduty_events
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "pagerduty_events_v2"
RECEIVED = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
NOW = RECEIVED.timestamp()


def _delivery(tenant: str = "t1") -> Delivery:
    return Delivery(
        tenant_id=tenant,
        provider="pagerduty-events",
        event_id="e1",
        received_at=RECEIVED,
        headers={},
    )


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_bytes())


def _records(name: str) -> list[Normalised]:
    return pagerduty_events.normalise(_load(name), _delivery())


def _alert(name: str) -> CanonicalAlert:
    [record] = _records(name)
    assert isinstance(record, CanonicalAlert)
    return record


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- real fixtures ---------------------------------------------------------------


def test_docs_trigger_full() -> None:
    alert = _alert("docs_trigger_full.json")
    assert alert.source == "pagerduty-events"
    assert alert.status is AlertStatus.FIRING
    assert alert.severity is Severity.INFO
    assert alert.title == "Example alert on host1.example.com"
    assert alert.service == "prod-datapipe"  # payload.group
    assert alert.resource == (
        "monitoringtool:cloudvendor:central-region-dc-01:852559987:cluster/api-stats-prod-003"
    )
    # The docs reuse the routing key as dedup key: the secret is redacted, not echoed.
    assert alert.fingerprint == "pagerduty-events:[redacted]"
    assert alert.source_ref == "[redacted]"
    assert alert.started_at == _at("2015-07-17T08:42:58.315+00:00")
    assert alert.ended_at is None
    assert alert.labels == {
        "pagerduty_action": "trigger",
        "component": "postgres",
        "group": "prod-datapipe",
        "class": "deploy",
        "client": "Sample Monitoring Service",
        "ping time": "1500ms",
        "load avg": "0.75",
    }
    assert alert.links == {
        "Link text": "https://example.com/",
        "source": "https://monitoring.example.com",
    }
    assert "samplekeyhere" not in repr(alert)


def test_docs_acknowledge() -> None:
    alert = _alert("docs_acknowledge.json")
    assert alert.source == "pagerduty-events"
    assert alert.status is AlertStatus.FIRING  # acknowledged is still a problem
    assert alert.severity is Severity.MEDIUM
    assert alert.title == "dedupkeyhere"
    assert alert.service == ""
    assert alert.fingerprint == "pagerduty-events:dedupkeyhere"
    assert alert.source_ref == "dedupkeyhere"
    assert alert.started_at == RECEIVED
    assert alert.ended_at is None
    assert alert.labels == {"pagerduty_action": "acknowledge"}
    assert "routingkeyhere" not in repr(alert)


def test_docs_resolve() -> None:
    alert = _alert("docs_resolve.json")
    assert alert.source == "pagerduty-events"
    assert alert.status is AlertStatus.RESOLVED
    assert alert.severity is Severity.MEDIUM
    assert alert.title == "dedupkeyhere"
    assert alert.service == ""
    assert alert.fingerprint == "pagerduty-events:dedupkeyhere"
    assert alert.started_at == RECEIVED
    assert alert.ended_at == RECEIVED
    assert alert.labels == {"pagerduty_action": "resolve"}


def test_docs_change_event_is_a_deploy() -> None:
    [record] = _records("docs_change_event.json")
    assert isinstance(record, DeployEvent)
    assert record.source == "pagerduty-events"
    assert record.status is DeployStatus.SUCCESS
    assert record.service == "acme-build-pipeline-tool-default-i-9999"
    assert record.title == "Build Success: Increase snapshot create timeout to 30 seconds"
    assert record.url == "https://acme.pagerduty.dev/build/2"
    assert record.started_at == _at("2020-07-17T08:42:58.315+00:00")
    assert record.finished_at == record.started_at
    assert record.source_ref.startswith("change:")
    assert "samplekeyhere" not in repr(record)
    [again] = _records("docs_change_event.json")
    assert again.source_ref == record.source_ref  # a redelivery names the same change


# --- lifecycles ------------------------------------------------------------------


def test_trigger_acknowledge_resolve_share_fingerprint() -> None:
    trigger = _alert("trigger_dedupkeyhere_handmade.json")
    ack = _alert("docs_acknowledge.json")
    resolve = _alert("docs_resolve.json")
    assert trigger.fingerprint == ack.fingerprint == resolve.fingerprint
    assert trigger.severity is Severity.HIGH  # error
    assert trigger.service == "billing"  # custom_details.service beats group
    assert trigger.environment == "prod"
    assert trigger.resource == "db-7.prod.example.com"
    assert trigger.labels["used_pct"] == "92"
    assert trigger.links == {"source": "https://monitoring.example.com/alerts/42"}


def test_docs_trigger_and_handmade_resolve_share_redacted_fingerprint() -> None:
    trigger = _alert("docs_trigger_full.json")
    resolve = _alert("resolve_samplekeyhere_handmade.json")
    assert resolve.status is AlertStatus.RESOLVED
    assert resolve.fingerprint == trigger.fingerprint
    assert resolve.title == "[redacted]"
    assert "samplekeyhere" not in repr(resolve)


def test_trigger_without_dedup_key_is_identified_by_what_it_is() -> None:
    first = _alert("trigger_no_dedup_key_handmade.json")
    again = _alert("trigger_no_dedup_key_again_handmade.json")
    assert first.fingerprint == again.fingerprint
    assert first.fingerprint == computed_fingerprint(
        "t1",
        "pagerduty-events",
        "High 5xx rate on checkout",
        "lb-1.example.com",
        {"component": "nginx", "class": "http_5xx"},
    )
    assert first.source_ref == first.fingerprint
    assert first.severity is Severity.CRITICAL
    assert first.service == "nginx"  # no group: component
    other_tenant = pagerduty_events.normalise(
        _load("trigger_no_dedup_key_handmade.json"), _delivery("t2")
    )[0]
    assert isinstance(other_tenant, CanonicalAlert)
    assert other_tenant.fingerprint != first.fingerprint
    body = _load("trigger_no_dedup_key_handmade.json")
    body["payload"]["summary"] = "High 5xx rate on search"
    assert _alert_from(body).fingerprint != first.fingerprint


def test_batch() -> None:
    trigger, resolve = _records("batch_handmade.json")
    assert isinstance(trigger, CanonicalAlert)
    assert isinstance(resolve, CanonicalAlert)
    assert trigger.fingerprint == "pagerduty-events:queue-backlog/orders"
    assert trigger.severity is Severity.MEDIUM  # warning
    assert trigger.service == ""
    assert trigger.resource == "sqs"
    assert resolve.status is AlertStatus.RESOLVED
    assert resolve.fingerprint == "pagerduty-events:dedupkeyhere"


def test_routing_key_never_appears_in_output() -> None:
    secret = "R0UT1NGKEYSECRET00000000000000ab"
    alert = _alert("trigger_routing_key_leak_handmade.json")
    assert secret not in repr(alert)
    assert "routing_key" not in alert.labels
    assert alert.title == "test from curl with key [redacted]"
    assert alert.fingerprint == "pagerduty-events:alert-[redacted]"
    assert alert.labels["note"] == "sent with [redacted]"
    assert alert.links == {"[redacted]": "https://example.com/?k=[redacted]"}


@pytest.mark.parametrize(
    ("severity", "expected"),
    [
        ("critical", Severity.CRITICAL),
        ("error", Severity.HIGH),
        ("warning", Severity.MEDIUM),
        ("info", Severity.INFO),
        ("CRITICAL", Severity.CRITICAL),
        ("disaster", Severity.MEDIUM),
        (None, Severity.MEDIUM),
        (3, Severity.MEDIUM),
    ],
)
def test_severity_table(severity: Any, expected: Severity) -> None:
    body = _load("trigger_dedupkeyhere_handmade.json")
    body["payload"]["severity"] = severity
    assert _alert_from(body).severity is expected


def test_change_event_service_prefers_custom_details() -> None:
    body = _load("docs_change_event.json")
    body["payload"]["custom_details"] |= {"service": "checkout", "environment": "prod"}
    body["payload"]["custom_details"]["version"] = "v1.4.2"
    [record] = pagerduty_events.normalise(body, _delivery())
    assert isinstance(record, DeployEvent)
    assert (record.service, record.environment, record.version) == ("checkout", "prod", "v1.4.2")


def test_links_without_text_and_unsafe_links() -> None:
    body = _load("trigger_dedupkeyhere_handmade.json")
    body["links"] = [
        {"href": "https://a.example/"},
        {"href": "https://b.example/"},
        {"href": "javascript:alert(1)", "text": "bad"},
        "not a link",
    ]
    del body["client_url"]
    assert _alert_from(body).links == {"link": "https://a.example/", "link 2": "https://b.example/"}


def _alert_from(body: Any) -> CanonicalAlert:
    [record] = pagerduty_events.normalise(body, _delivery())
    assert isinstance(record, CanonicalAlert)
    return record


# --- foreign and malformed bodies ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "empty array"),
        ("text", "body must be a JSON object or array"),
        ({"routing_key": "k"}, "needs 'event_action'"),
        ({"service_key": "k", "event_type": "trigger", "description": "v1"}, "event_action"),
        (
            {"routing_key": "k", "event_action": "snooze", "dedup_key": "d"},
            "unknown 'event_action'",
        ),
        ({"routing_key": "k", "event_action": "resolve"}, "needs a 'dedup_key'"),
        ({"routing_key": "k", "event_action": "trigger", "payload": {}}, "payload.summary"),
        ({"routing_key": "k", "payload": {"summary": "no source"}}, "change event needs"),
        ([{"routing_key": "k", "event_action": "resolve", "dedup_key": "d"}, 5], "event 1"),
    ],
)
def test_foreign_bodies_raise_payload_error(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        pagerduty_events.normalise(body, _delivery())


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_any_junk_in_any_field_raises_only_payload_error(name: str) -> None:
    document = _load(name)
    for path in paths(document):
        for junk in JUNK:
            try:
                records = pagerduty_events.normalise(replaced(document, path, junk), _delivery())
            except PayloadError:
                continue
            for record in records:
                if isinstance(record, CanonicalAlert):
                    assert all(isinstance(v, str) for v in record.labels.values())
                    assert len(record.title) <= 1024


# --- routing key auth ------------------------------------------------------------------


def _raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("docs_trigger_full.json", "samplekeyhere"),
        ("docs_change_event.json", "samplekeyhere"),
        ("docs_acknowledge.json", "routingkeyhere"),
        ("docs_resolve.json", "routingkeyhere"),
        ("batch_handmade.json", "routingkeyhere"),
    ],
)
def test_routing_key_equal_to_secret_passes(name: str, secret: str) -> None:
    pagerduty_events.verify({}, _raw(name), secret, NOW)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("docs_trigger_full.json", "routingkeyhere"),
        ("docs_acknowledge.json", "samplekeyhere"),
        ("docs_acknowledge.json", "routingkeyher"),
        ("batch_mixed_keys_handmade.json", "routingkeyhere"),
        ("batch_mixed_keys_handmade.json", "someoneelseskey"),
    ],
)
def test_wrong_routing_key_is_rejected(name: str, secret: str) -> None:
    with pytest.raises(AuthError) as caught:
        pagerduty_events.verify({}, _raw(name), secret, NOW)
    assert caught.value.reason == "signature_mismatch"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{",
        b"[" * 100_000,
        b"[]",
        b"null",
        b"[1]",
        b'{"event_action": "trigger"}',
        b'{"routing_key": ""}',
        b'{"routing_key": 5}',
        b'[{"routing_key": "routingkeyhere"}, {"event_action": "resolve"}]',
    ],
)
def test_missing_routing_key(body: bytes) -> None:
    with pytest.raises(AuthError) as caught:
        pagerduty_events.verify({}, body, "routingkeyhere", NOW)
    assert caught.value.reason == "missing_signature"


def test_module_constants() -> None:
    assert pagerduty_events.NAME == "pagerduty-events"
    assert pagerduty_events.DELIVERY_ID_HEADERS == ()
