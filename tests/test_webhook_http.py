"""Every recorded body of every provider, through HTTP: signed in the provider's own
scheme, accepted, processed by the worker, and stored exactly as the provider module
normalises it (or dead-lettered when the module cannot read it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from conftest import drain
from dd0c_alert.domain.models import CanonicalAlert, DeployEvent
from dd0c_alert.providers import PROVIDERS
from webhook_helpers import (
    FixtureCase,
    api_items,
    at,
    auth_headers,
    dead_letters,
    delivery_for,
    fixture_cases,
    integration_secret,
    lower,
    new_tenant,
    normalise_locally,
    replayed_headers,
    routing_keys,
    running,
)

pytestmark = pytest.mark.both_modes

CASES = fixture_cases()

ALERT_FIELDS = (
    "source",
    "source_ref",
    "fingerprint",
    "status",
    "severity",
    "title",
    "description",
    "service",
    "environment",
    "resource",
    "started_at",
    "labels",
    "links",
)
DEPLOY_FIELDS = (
    "source",
    "source_ref",
    "service",
    "status",
    "environment",
    "version",
    "commit",
    "author",
    "title",
    "url",
    "started_at",
    "finished_at",
)


def _param(case: FixtureCase) -> Any:
    marks = []
    if case.provider not in PROVIDERS:
        marks.append(pytest.mark.skip(reason=f"provider {case.provider!r} is not registered"))
    return pytest.param(case, id=case.id, marks=marks)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    with running(tmp_path_factory.mktemp("http")) as pair:
        yield pair


def test_every_registered_provider_has_recorded_bodies() -> None:
    """Each registered provider (but ``custom``, dd0c/alert's own schema) has real bodies
    for the HTTP test below to send."""
    without = set(PROVIDERS) - {"custom"} - {case.provider for case in CASES}
    assert not without, f"no fixtures under tests/fixtures/payloads/ for {sorted(without)}"


def _view(record: CanonicalAlert | DeployEvent | dict[str, Any], fields: tuple[str, ...]) -> dict:
    """Comparable field values of a stored item (API JSON) or a normalised record."""
    view: dict[str, Any] = {}
    for name in fields:
        value = record[name] if isinstance(record, dict) else getattr(record, name)
        if name in ("started_at", "finished_at") and isinstance(value, str):
            value = at(value)
        elif hasattr(value, "value"):  # a status / severity enum
            value = value.value
        view[name] = value
    return view


def _groups(records: list[Any], key: str) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {}
    for record in records:
        grouped.setdefault(getattr(record, key), []).append(record)
    return grouped


def _check_alerts(stored: list[dict[str, Any]], expected: list[CanonicalAlert]) -> None:
    """One stored alert per fingerprint. Repeats of a fingerprint inside one body fold
    into the first (design §6 dedup): its identity stays, its status is the last one."""
    groups = _groups(expected, "fingerprint")
    by_fingerprint = _groups_dicts(stored, "fingerprint")
    assert sorted(by_fingerprint) == sorted(groups)
    for fingerprint, records in groups.items():
        [item] = by_fingerprint[fingerprint]
        if len(records) == 1:
            assert _view(item, ALERT_FIELDS) == _view(records[0], ALERT_FIELDS)
            continue
        identity = ("source", "fingerprint", "service", "started_at")
        assert _view(item, identity) == _view(records[0], identity)
        assert item["status"] == records[-1].status.value
        assert item["title"] in {record.title for record in records}
        assert item["severity"] in {record.severity.value for record in records}
        assert item["labels"] in [record.labels for record in records]


def _check_deploys(stored: list[dict[str, Any]], expected: list[DeployEvent]) -> None:
    """One stored deploy per source_ref; updates inside one body fold into it."""
    groups = _groups(expected, "source_ref")
    by_ref = _groups_dicts(stored, "source_ref")
    assert sorted(by_ref) == sorted(groups)
    for ref, records in groups.items():
        [item] = by_ref[ref]
        if len(records) == 1:
            assert _view(item, DEPLOY_FIELDS) == _view(records[0], DEPLOY_FIELDS)
        else:
            assert item["status"] == records[-1].status.value
            assert at(item["started_at"]) == min(record.started_at for record in records)


def _groups_dicts(items: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        grouped.setdefault(item[key], []).append(item)
    return grouped


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_fixture_through_http_is_stored_as_normalised(
    service: tuple[Any, Any], case: FixtureCase
) -> None:
    runtime, client = service
    tenant = new_tenant(runtime)  # a fresh tenant: nothing to fold into but this body
    secret = integration_secret(case.provider, case.body, case.recorded_secret or "fx-secret")
    tenant.integration(case.provider, secret)
    headers = {
        "Content-Type": "application/json",
        **replayed_headers(case.recorded),
        **auth_headers(case.provider, case.body, secret, case.recorded),
    }

    response = client.post(
        f"/v1/wh/{tenant.id}/{case.provider}", content=case.body, headers=headers
    )

    keys = routing_keys(case.body) if case.provider == "pagerduty-events" else []
    if len(set(map(str, keys))) > 1:
        # Every event of a batch must carry the integration's routing key (design §5).
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "signature_mismatch"
        assert runtime.queue.depth().messages == 0
        assert api_items(client, tenant, "/v1/alerts") == []
        assert dead_letters(runtime, tenant.id) == []
        return
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    event_id = response.json()["event_id"]
    drain(runtime)

    alerts = [a for a in api_items(client, tenant, "/v1/alerts") if a["event_id"] == event_id]
    deploys = [d for d in api_items(client, tenant, "/v1/deploys") if d["event_id"] == event_id]
    dead = dead_letters(runtime, tenant.id)
    stored = alerts + deploys
    # Fallback times are the delivery's: take the receive time the pipeline recorded.
    received = at(stored[0]["received_at"]) if stored else datetime.now(UTC)
    delivery = delivery_for(case.provider, tenant.id, event_id, lower(headers), received)
    expected = normalise_locally(case.provider, case.body, delivery)

    if isinstance(expected, str):  # PayloadError: kept, with the error, replayable
        assert stored == []
        assert [d["event_id"] for d in dead] == [event_id]
        assert expected in dead[0]["error"]
        return
    assert dead == [], dead
    if not expected:  # e.g. a ping or a job event: understood, nothing to record
        assert stored == []
        return
    _check_alerts(alerts, [r for r in expected if isinstance(r, CanonicalAlert)])
    _check_deploys(deploys, [r for r in expected if isinstance(r, DeployEvent)])
    # The raw payload is kept byte for byte, but for a credential in it: an Events v2
    # routing key is the integration secret, replaced at admission (SECURITY.md).
    kept = case.body
    if case.provider == "pagerduty-events":
        kept = case.body.replace(secret.encode(), b"[redacted]")
    for alert in alerts:
        raw = client.get(f"/v1/alerts/{alert['id']}/raw", headers=tenant.auth)
        assert raw.status_code == 200
        assert raw.content == kept
        assert secret.encode() not in raw.content


SIGNED = [
    case
    for case in CASES
    if case.recorded_secret and case.provider in ("github", "pagerduty", "gitlab")
]
_RECORDED_PROOF = {
    "github": "x-hub-signature-256",
    "pagerduty": "x-pagerduty-signature",
    "gitlab": "x-gitlab-token",
}


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in SIGNED])
def test_auth_helper_reproduces_recorded_signatures(case: FixtureCase) -> None:
    """The signing helper agrees with signatures the recordings carry."""
    assert case.recorded_secret is not None
    name = _RECORDED_PROOF[case.provider]
    made = lower(auth_headers(case.provider, case.body, case.recorded_secret, case.recorded))
    assert made[name] == lower(case.recorded)[name]
