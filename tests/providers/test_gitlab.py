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
from dd0c_alert.providers import gitlab
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "gitlab"
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW = RECEIVED.timestamp()
REAL = ["deployment_hook_success", "job_hook_success", "pipeline_hook_success"]
HEADER = {"deployment": "Deployment Hook", "pipeline": "Pipeline Hook", "build": "Job Hook"}


def recorded(name: str) -> tuple[bytes, dict[str, str], str]:
    """Raw body, lower-cased request headers and the secret token of a fixture."""
    meta = json.loads((FIXTURES / f"{name}.headers.json").read_bytes())
    headers = {key.lower(): value for key, value in meta["headers"].items()}
    return (FIXTURES / f"{name}.json").read_bytes(), headers, meta["signature"]["secret"]


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_bytes())


def delivery(headers: dict[str, str] | None = None) -> Delivery:
    return Delivery(
        tenant_id="t1",
        provider="gitlab",
        event_id="e1",
        received_at=RECEIVED,
        headers=headers or {},
    )


def deploys(payload: Any, headers: dict[str, str] | None = None) -> list[DeployEvent]:
    result = gitlab.normalise(payload, delivery(headers))
    assert all(isinstance(item, DeployEvent) for item in result)
    return [item for item in result if isinstance(item, DeployEvent)]


def real(name: str) -> list[DeployEvent]:
    body, headers, _ = recorded(name)
    # Headers are never credentials in a Delivery: drop the token as the web layer does.
    headers.pop("x-gitlab-token")
    return deploys(json.loads(body), headers)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- real fixtures -----------------------------------------------------------------------


def test_deployment_hook_real() -> None:
    [deploy] = real("deployment_hook_success")
    assert deploy.source == "gitlab"
    assert deploy.tenant_id == "t1"
    assert deploy.source_ref == "deployment:15"
    assert deploy.status is DeployStatus.SUCCESS
    assert deploy.service == "test-deployment-webhooks"
    assert deploy.environment == "staging"
    assert deploy.version == "1.0.0"
    assert deploy.commit == "279484c09fbe69ededfced8c1bb6e6d24616b468"  # from commit_url
    assert deploy.author == "user1"
    assert deploy.title == "Add new file"
    assert deploy.url == "http://10.126.0.2:3000/root/test-deployment-webhooks/-/jobs/796"
    assert deploy.started_at == at("2021-04-28T19:50:00")  # "21:50:00 +0200"
    assert deploy.finished_at == at("2021-04-28T19:50:00")
    assert deploy.received_at == RECEIVED


def test_job_hook_real_is_not_a_deploy() -> None:
    # auto_deploy:start in environment "production": its Deployment event reports it.
    assert real("job_hook_success") == []


def test_pipeline_hook_real_deploys_nothing() -> None:
    # The only deploy job ("production", manual) was skipped; the rest build and test.
    assert real("pipeline_hook_success") == []


@pytest.mark.parametrize("name", REAL)
def test_kind_from_header_when_object_kind_missing(name: str) -> None:
    payload = load(name)
    kind = payload.pop("object_kind")
    assert deploys(payload, {"x-gitlab-event": HEADER[kind]}) == real(name)


# --- hand-made pairs ---------------------------------------------------------------------


def test_deployment_running_then_success_share_source_ref() -> None:
    [running] = deploys(load("deployment_hook_running_handmade"))
    [success] = deploys(load("deployment_hook_success_handmade"))
    assert running.source_ref == success.source_ref == "deployment:42"
    assert running.status is DeployStatus.IN_PROGRESS
    assert success.status is DeployStatus.SUCCESS
    for deploy in (running, success):
        assert deploy.service == "checkout-api"  # path slug, not "Checkout API"
        assert deploy.environment == "production"
        assert deploy.version == "v2.4.1"
        assert deploy.commit == "5c1f7a2e9b0d4c3a8e7f6d5c4b3a29180716f5e4"
        assert deploy.author == "ada"
        assert deploy.title == "Raise checkout timeout to 5s"
        assert deploy.url == "https://gitlab.example.com/shop/checkout-api/-/jobs/901"
    assert running.started_at == at("2024-03-05T09:00:04")
    assert running.finished_at is None
    assert success.started_at == at("2024-03-05T09:03:41")  # GitLab sends only the change time
    assert success.finished_at == at("2024-03-05T09:03:41")


def test_pipeline_with_deploy_job_running_then_failed() -> None:
    [running] = deploys(load("pipeline_hook_deploy_running_handmade"))
    [failed] = deploys(load("pipeline_hook_deploy_failed_handmade"))
    assert running.source_ref == failed.source_ref == "pipeline:9001"
    assert running.status is DeployStatus.IN_PROGRESS
    assert failed.status is DeployStatus.FAILURE
    for deploy in (running, failed):
        assert deploy.service == "checkout-api"
        assert deploy.environment == "production"  # not the stopped review environment
        assert deploy.version == "main"
        assert deploy.commit == "5c1f7a2e9b0d4c3a8e7f6d5c4b3a29180716f5e4"
        assert deploy.author == "ada"
        assert deploy.title == "Raise checkout timeout to 5s"
        assert deploy.url == "https://gitlab.example.com/shop/checkout-api/-/pipelines/9001"
        assert deploy.started_at == at("2024-03-05T09:00:02")  # the deploy job's start
    assert running.finished_at is None
    assert failed.finished_at == at("2024-03-05T09:02:30")  # the deploy job's end


@pytest.mark.parametrize(
    ("job_statuses", "expected"),
    [
        (["success"], DeployStatus.SUCCESS),
        (["success", "created"], DeployStatus.SUCCESS),  # staging done, production waiting
        (["success", "running"], DeployStatus.IN_PROGRESS),
        (["success", "failed"], DeployStatus.FAILURE),
        (["canceled"], DeployStatus.CANCELLED),
        (["canceling"], DeployStatus.IN_PROGRESS),
    ],
)
def test_pipeline_status_follows_deploy_jobs(
    job_statuses: list[str], expected: DeployStatus
) -> None:
    payload = load("pipeline_hook_deploy_failed_handmade")
    template = payload["builds"][0]
    payload["builds"] = [
        dict(template, id=i, status=status, environment={"name": f"env{i}", "action": "start"})
        for i, status in enumerate(job_statuses)
    ]
    [deploy] = deploys(payload)
    assert deploy.status is expected
    started = [f"env{i}" for i, s in enumerate(job_statuses) if s != "created"]
    assert deploy.environment == ",".join(started)


def test_pipeline_with_only_unstarted_or_non_deploy_jobs_is_nothing() -> None:
    payload = load("pipeline_hook_deploy_running_handmade")
    payload["builds"][0]["status"] = "manual"
    assert deploys(payload) == []
    payload["builds"] = "junk"
    assert deploys(payload) == []


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("created", DeployStatus.PENDING),
        ("running", DeployStatus.IN_PROGRESS),
        ("success", DeployStatus.SUCCESS),
        ("failed", DeployStatus.FAILURE),
        ("canceled", DeployStatus.CANCELLED),
    ],
)
def test_deployment_statuses(status: str, expected: DeployStatus) -> None:
    payload = load("deployment_hook_success_handmade")
    payload["status"] = status
    [deploy] = deploys(payload)
    assert deploy.status is expected


def test_deployment_without_full_sha_keeps_short_sha() -> None:
    payload = load("deployment_hook_success_handmade")
    payload["commit_url"] = None
    [deploy] = deploys(payload)
    assert deploy.commit == "5c1f7a2e"


@pytest.mark.parametrize("kind", ["push", "tag_push", "merge_request", "note", "release", "build"])
def test_other_gitlab_hooks_return_nothing(kind: str) -> None:
    assert deploys({"object_kind": kind}) == []


def test_unknown_hook_with_gitlab_header_returns_nothing() -> None:
    assert deploys({"event_name": "project_create"}, {"x-gitlab-event": "System Hook"}) == []


def test_foreign_and_broken_bodies_are_payload_errors() -> None:
    with pytest.raises(PayloadError, match="object_kind"):
        deploys({"alerts": []})
    with pytest.raises(PayloadError, match="JSON object"):
        deploys([1, 2])
    payload = load("deployment_hook_success")
    payload["status"] = "exploded"
    with pytest.raises(PayloadError, match="exploded"):
        deploys(payload)
    del payload["deployment_id"]
    with pytest.raises(PayloadError, match="deployment_id"):
        deploys(payload)
    payload = load("deployment_hook_success")
    del payload["project"]
    with pytest.raises(PayloadError, match="project"):
        deploys(payload)
    with pytest.raises(PayloadError, match="object_attributes"):
        deploys({"object_kind": "pipeline"})


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_recorded_token_verifies(name: str) -> None:
    body, headers, secret = recorded(name)
    gitlab.verify(headers, body, secret, NOW)


def test_wrong_token_is_mismatch() -> None:
    body, headers, secret = recorded("deployment_hook_success")
    with pytest.raises(AuthError) as wrong:
        gitlab.verify(headers, body, "not-" + secret, NOW)
    assert wrong.value.reason == "signature_mismatch"


def test_missing_token_is_missing() -> None:
    body, headers, secret = recorded("deployment_hook_success")
    del headers["x-gitlab-token"]
    headers["authorization"] = f"Bearer {secret}"  # not GitLab's scheme
    with pytest.raises(AuthError) as missing:
        gitlab.verify(headers, body, secret, NOW)
    assert missing.value.reason == "missing_signature"


def test_delivery_id_headers() -> None:
    _, headers, _ = recorded("pipeline_hook_success")
    assert gitlab.DELIVERY_ID_HEADERS == ("idempotency-key", "x-gitlab-event-uuid")
    assert all(headers[name] for name in gitlab.DELIVERY_ID_HEADERS)


# --- robustness ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
REAL_KEYS = [
    "object_kind",
    "status",
    "deployment_id",
    "status_changed_at",
    "project",
    "commit_url",
    "user",
    "object_attributes",
    "builds",
    "commit",
    "id",
    "environment",
    "started_at",
]
MUTABLE = [
    "deployment_hook_success",
    "pipeline_hook_success",
    "deployment_hook_running_handmade",
    "pipeline_hook_deploy_running_handmade",
    "pipeline_hook_deploy_failed_handmade",
]


@settings(max_examples=300, deadline=None)
@given(payload=json_values, header=st.sampled_from(["", *HEADER.values()]))
def test_any_json_is_deploys_or_payload_error(payload: Any, header: str) -> None:
    with contextlib.suppress(PayloadError):
        deploys(payload, {"x-gitlab-event": header} if header else None)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(MUTABLE),
    part=st.sampled_from(["", "object_attributes", "project", "builds"]),
    key=st.sampled_from(REAL_KEYS) | st.text(max_size=15),
    value=json_values,
)
def test_mutated_payloads_never_raise_other_errors(
    name: str, part: str, key: str, value: Any
) -> None:
    payload = copy.deepcopy(load(name))
    target = payload.get(part) if part else payload
    if isinstance(target, list) and target:
        target = target[0]
    if not isinstance(target, dict):
        target = payload
    target[key] = value
    with contextlib.suppress(PayloadError):
        deploys(payload)
