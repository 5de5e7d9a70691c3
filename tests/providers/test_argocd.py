import base64
import contextlib
import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dd0c_alert.domain.models import DeployEvent, DeployStatus
from dd0c_alert.providers import argocd
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "argocd"
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW = RECEIVED.timestamp()
SECRET = "argo-webhook-token-1"
DELIVERY = Delivery(
    tenant_id="t1", provider="argocd", event_id="e1", received_at=RECEIVED, headers={}
)


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_bytes())


def deploy_of(payload: Any) -> DeployEvent:
    [deploy] = argocd.normalise(payload, DELIVERY)
    assert isinstance(deploy, DeployEvent)
    return deploy


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the recommended template ----------------------------------------------------------------


def test_recommended_template_succeeded() -> None:
    deploy = deploy_of(load("app_sync_succeeded_handmade"))
    assert deploy.source == "argocd"
    assert deploy.tenant_id == "t1"
    assert deploy.source_ref == "checkout-api@2024-03-05T09:10:00+00:00"
    assert deploy.status is DeployStatus.SUCCESS
    assert deploy.service == "checkout-api"
    assert deploy.environment == "production"  # label dd0c.io/environment beats the namespace
    assert deploy.version == "9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e"
    assert deploy.commit == "9f2c4e1b7a3d5c6e8f0a1b2c3d4e5f6a7b8c9d0e"
    assert deploy.author == "automated"
    assert deploy.title == "successfully synced (all tasks run)"
    assert deploy.url == "https://argocd.example.com/applications/checkout-api"
    assert deploy.started_at == at("2024-03-05T09:10:00")
    assert deploy.finished_at == at("2024-03-05T09:10:42")
    assert deploy.received_at == RECEIVED


def test_running_and_succeeded_of_one_sync_share_source_ref() -> None:
    running = deploy_of(load("app_sync_running_handmade"))
    succeeded = deploy_of(load("app_sync_succeeded_handmade"))
    assert running.source_ref == succeeded.source_ref
    assert running.status is DeployStatus.IN_PROGRESS
    assert running.version == ""  # revision not known yet when on-sync-running fires
    assert running.started_at == succeeded.started_at
    assert running.finished_at is None


def test_recommended_template_failed() -> None:
    deploy = deploy_of(load("app_sync_failed_handmade"))
    assert deploy.source_ref == "checkout-api@2024-03-05T11:20:05+00:00"  # another sync
    assert deploy.status is DeployStatus.FAILURE
    assert deploy.service == "checkout-api"
    assert deploy.environment == "production"
    assert deploy.version == "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
    assert deploy.author == "ada@example.com"
    assert deploy.title.startswith("one or more objects failed to apply")
    assert deploy.started_at == at("2024-03-05T11:20:05")
    assert deploy.finished_at == at("2024-03-05T11:21:10")


def test_service_and_environment_overrides() -> None:
    payload = load("app_sync_succeeded_handmade")
    payload["labels"] = {"dd0c.io/service": "checkout"}
    deploy = deploy_of(payload)
    assert deploy.service == "checkout"
    assert deploy.environment == "checkout-prod"  # no label: the destination namespace
    payload.update(service="payments-checkout", environment="prod-eu")
    deploy = deploy_of(payload)
    assert (deploy.service, deploy.environment) == ("payments-checkout", "prod-eu")


def test_commit_message_is_the_title() -> None:
    payload = load("app_sync_succeeded_handmade")
    payload["commit_message"] = "Bump checkout-api to v2.4.1\n\nChangelog: …"
    assert deploy_of(payload).title == "Bump checkout-api to v2.4.1"


# --- other template shapes ----------------------------------------------------------------


def test_minimal_template() -> None:
    deploy = deploy_of(load("minimal_app_status_handmade"))
    assert deploy.source_ref == "guestbook@2025-06-01T12:00:00+00:00"  # nothing else names it
    assert deploy.status is DeployStatus.SUCCESS  # "Synced"
    assert deploy.service == "guestbook"
    assert deploy.environment == ""
    assert deploy.version == ""
    assert deploy.started_at == RECEIVED
    assert deploy.finished_at == RECEIVED


def test_application_object_template() -> None:
    deploy = deploy_of(load("application_object_handmade"))
    assert deploy.source_ref == "guestbook@2024-03-05T12:00:01+00:00"
    assert deploy.status is DeployStatus.SUCCESS
    assert deploy.service == "guestbook"
    assert deploy.environment == "staging"  # the app's "env" label
    assert deploy.version == "53e28ff20cc530b9ada2173fbbd64d48338583ba"
    assert deploy.commit == "53e28ff20cc530b9ada2173fbbd64d48338583ba"
    assert deploy.author == "automated"
    assert deploy.title == "successfully synced (all tasks run)"
    assert deploy.started_at == at("2024-03-05T12:00:01")
    assert deploy.finished_at == at("2024-03-05T12:00:09")


def test_application_object_as_body_or_under_app() -> None:
    app = load("application_object_handmade")["application"]
    expected = deploy_of({"application": app})
    assert deploy_of(app) == expected
    assert deploy_of({"app": app}) == expected


def test_flat_keys_win_over_the_application_object() -> None:
    payload = load("application_object_handmade")
    payload["phase"] = "Running"
    payload["environment"] = "qa"
    deploy = deploy_of(payload)
    assert deploy.status is DeployStatus.IN_PROGRESS
    assert deploy.environment == "qa"


def test_application_object_manual_sync_author() -> None:
    payload = load("application_object_handmade")
    operation = payload["application"]["status"]["operationState"]["operation"]
    operation["initiatedBy"] = {"username": "admin"}
    assert deploy_of(payload).author == "admin"


def test_revision_names_the_sync_without_start_time() -> None:
    deploy = deploy_of(
        {"appName": "guestbook", "syncRevision": "v1.2.3", "operationPhase": "Failed"}
    )
    assert deploy.source_ref == "guestbook@v1.2.3"
    assert deploy.status is DeployStatus.FAILURE
    assert deploy.version == "v1.2.3"
    assert deploy.commit == ""  # not a git SHA


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"phase": "Running"}, DeployStatus.IN_PROGRESS),
        ({"phase": "Terminating"}, DeployStatus.CANCELLED),
        ({"phase": "Succeeded"}, DeployStatus.SUCCESS),
        ({"phase": "Failed"}, DeployStatus.FAILURE),
        ({"phase": "Error"}, DeployStatus.FAILURE),
        ({"status": "Out Of Sync"}, DeployStatus.PENDING),
        ({"status": "in_progress"}, DeployStatus.IN_PROGRESS),
        ({"status": "Degraded"}, DeployStatus.FAILURE),
        ({"status": "canceled"}, DeployStatus.CANCELLED),
        ({"health_status": "Degraded", "sync_status": "Synced"}, DeployStatus.FAILURE),
        ({"healthStatus": "Progressing"}, DeployStatus.IN_PROGRESS),
        ({"syncStatus": "OutOfSync", "healthStatus": "Healthy"}, DeployStatus.PENDING),
        ({"sync": "Synced", "health": "Healthy"}, DeployStatus.SUCCESS),
        ({}, DeployStatus.SUCCESS),
    ],
)
def test_status_resolution(fields: dict[str, str], expected: DeployStatus) -> None:
    assert deploy_of({"app": "guestbook", **fields}).status is expected


@pytest.mark.parametrize("fields", [{"phase": "Exploded"}, {"status": "Unknown"}])
def test_unknown_state_words_are_payload_errors(fields: dict[str, str]) -> None:
    word = next(iter(fields.values()))
    with pytest.raises(PayloadError, match=word):
        argocd.normalise({"app": "guestbook", **fields}, DELIVERY)


@pytest.mark.parametrize(
    "payload", [{}, {"status": "Succeeded"}, {"app": {"x": 1}}, {"alerts": [{"labels": {}}]}]
)
def test_bodies_without_an_app_are_payload_errors(payload: Any) -> None:
    with pytest.raises(PayloadError, match="application name"):
        argocd.normalise(payload, DELIVERY)


def test_non_object_body_is_payload_error() -> None:
    with pytest.raises(PayloadError, match="JSON object"):
        argocd.normalise([{"app": "x"}], DELIVERY)


# --- auth ----------------------------------------------------------------------------------


BODY = (FIXTURES / "app_sync_succeeded_handmade.json").read_bytes()


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {SECRET}"},
        {"authorization": "Basic " + base64.b64encode(f"argocd:{SECRET}".encode()).decode()},
        {"x-dd0c-token": SECRET},
    ],
)
def test_token_schemes_pass(headers: dict[str, str]) -> None:
    argocd.verify(headers, BODY, SECRET, NOW)


def test_wrong_token_is_mismatch() -> None:
    with pytest.raises(AuthError) as wrong:
        argocd.verify({"authorization": "Bearer nope"}, BODY, SECRET, NOW)
    assert wrong.value.reason == "signature_mismatch"


def test_missing_token_is_missing() -> None:
    with pytest.raises(AuthError) as missing:
        argocd.verify({"content-type": "application/json"}, BODY, SECRET, NOW)
    assert missing.value.reason == "missing_signature"
    assert argocd.DELIVERY_ID_HEADERS == ()


# --- robustness ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["app", "application", "phase", "status", "revision", "started_at", "labels", "metadata"]


@settings(max_examples=300, deadline=None)
@given(payload=json_values)
def test_any_json_is_a_deploy_or_payload_error(payload: Any) -> None:
    with contextlib.suppress(PayloadError):
        argocd.normalise(payload, DELIVERY)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["app_sync_succeeded_handmade", "application_object_handmade"]),
    key=st.sampled_from(KEYS) | st.text(max_size=15),
    value=json_values,
    nested=st.booleans(),
)
def test_mutated_payloads_never_raise_other_errors(
    name: str, key: str, value: Any, nested: bool
) -> None:
    payload = copy.deepcopy(load(name))
    target = payload
    if nested and "application" in payload:
        target = payload["application"]["status"]["operationState"]
    target[key] = value
    with contextlib.suppress(PayloadError):
        argocd.normalise(payload, DELIVERY)


def test_huge_values_are_truncated() -> None:
    deploy = deploy_of({"app": "a" * 5000, "message": "m" * 100_000, "revision": "r" * 5000})
    assert len(deploy.service) == 256
    assert len(deploy.title) == 1024
    assert len(deploy.version) == 256
    assert len(deploy.source_ref) <= 512
