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
from dd0c_alert.providers import github
from dd0c_alert.providers.base import AuthError, Delivery, PayloadError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "payloads" / "github"
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
NOW = RECEIVED.timestamp()

REAL = [
    "deployment_created_gh_pages",
    "deployment_status_in_progress_gh_pages",
    "deployment_status_success",
    "workflow_job_completed_failure",
    "workflow_run_completed_success",
    "workflow_run_requested",
]


def recorded(name: str) -> tuple[bytes, dict[str, str], str]:
    """Raw body, lower-cased request headers and the signing secret of a fixture."""
    meta = json.loads((FIXTURES / f"{name}.headers.json").read_bytes())
    headers = {key.lower(): value for key, value in meta["headers"].items()}
    return (FIXTURES / f"{name}.json").read_bytes(), headers, meta["signature"]["secret"]


def delivery(headers: dict[str, str] | None = None) -> Delivery:
    return Delivery(
        tenant_id="t1",
        provider="github",
        event_id="e1",
        received_at=RECEIVED,
        headers=headers or {},
    )


def deploys(name: str, drop_event_header: bool = False) -> list[DeployEvent]:
    body, headers, _ = recorded(name)
    if drop_event_header:
        headers.pop("x-github-event")
    result = github.normalise(json.loads(body), delivery(headers))
    assert all(isinstance(item, DeployEvent) for item in result)
    return [item for item in result if isinstance(item, DeployEvent)]


def event_of(payload: Any, event: str) -> list[DeployEvent]:
    result = github.normalise(payload, delivery({"x-github-event": event}))
    return [item for item in result if isinstance(item, DeployEvent)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- real fixtures -----------------------------------------------------------------------


def test_deployment_created_real() -> None:
    [deploy] = deploys("deployment_created_gh_pages")
    assert deploy.source == "github"
    assert deploy.tenant_id == "t1"
    assert deploy.source_ref == "deployment:145988746"
    assert deploy.status is DeployStatus.PENDING
    assert deploy.service == "Hello-World"
    assert deploy.environment == "github-pages"
    assert deploy.version == "gh-pages"
    assert deploy.commit == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    assert deploy.author == "github-pages[bot]"
    assert deploy.title == "deploy gh-pages to github-pages"  # no description: generated
    assert deploy.url == "https://github.com/Codertocat/Hello-World/actions/runs/289782451"
    assert deploy.started_at == at("2022-01-03T01:28:30")
    assert deploy.received_at == RECEIVED
    assert deploy.finished_at is None


def test_deployment_status_in_progress_real() -> None:
    [deploy] = deploys("deployment_status_in_progress_gh_pages")
    assert deploy.source_ref == "deployment:145988746"
    assert deploy.status is DeployStatus.IN_PROGRESS
    assert deploy.service == "Hello-World"
    assert deploy.environment == "github-pages"
    assert deploy.version == "master"
    assert deploy.commit == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    assert deploy.author == "github-pages[bot]"
    assert deploy.title == "deploy master to github-pages"
    # log_url wins over the deprecated target_url (the published example points elsewhere)
    assert (
        deploy.url == "https://github.com/CorsixTH/CorsixTH/runs/4687056418?check_suite_focus=true"
    )
    assert deploy.started_at == at("2022-01-03T01:28:30")  # the deployment's, not the status'
    assert deploy.finished_at is None


def test_deployment_status_success_real() -> None:
    [deploy] = deploys("deployment_status_success")
    assert deploy.source_ref == "deployment:145988746"
    assert deploy.status is DeployStatus.SUCCESS
    assert deploy.service == "Hello-World"
    assert deploy.environment == "production"
    assert deploy.version == "master"
    assert deploy.commit == "f95f852bd8fca8fcc58a9a2d6c842781e32a215e"
    assert deploy.author == "Codertocat"
    assert deploy.title == "deploy master to production"
    assert deploy.url == "https://github.com/Codertocat/Hello-World/deployments"
    assert deploy.started_at == at("2019-05-15T15:20:53")
    assert deploy.finished_at == at("2019-05-15T15:20:55")


def test_deployment_events_of_one_deploy_share_source_ref() -> None:
    refs = {
        deploy.source_ref
        for name in REAL[:3]
        for deploy in deploys(name)  # created, in_progress, success
    }
    assert refs == {"deployment:145988746"}


def test_workflow_run_requested_real() -> None:
    [deploy] = deploys("workflow_run_requested")
    assert deploy.source_ref == "workflow_run:289782451"
    assert deploy.status is DeployStatus.PENDING  # run status "queued": not started yet
    assert deploy.service == "octo-repo"
    assert deploy.environment == ""
    assert deploy.version == "master"
    assert deploy.commit == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert deploy.author == "Codertocat"
    assert deploy.title == "test: ci(action): update actions/setup-node digest to 8c91899"
    assert deploy.url == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    assert deploy.started_at == at("2020-10-05T16:33:49")
    assert deploy.finished_at is None


def test_workflow_run_completed_real() -> None:
    [deploy] = deploys("workflow_run_completed_success")
    assert deploy.source_ref == "workflow_run:289782451"  # the same record as requested
    assert deploy.status is DeployStatus.SUCCESS
    assert deploy.service == "octo-repo"
    assert deploy.title == "test: ci(action): update actions/setup-node digest to 8c91899"
    assert deploy.started_at == at("2020-10-05T16:33:49")
    assert deploy.finished_at == at("2020-10-05T16:33:49")


def test_workflow_job_real_is_not_a_deploy() -> None:
    assert deploys("workflow_job_completed_failure") == []


@pytest.mark.parametrize("name", REAL)
def test_event_recognised_without_header(name: str) -> None:
    assert deploys(name, drop_event_header=True) == deploys(name)


# --- hand-made variants --------------------------------------------------------------------


def load(name: str) -> Any:
    return json.loads((FIXTURES / f"{name}.json").read_bytes())


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("queued", DeployStatus.PENDING),
        ("pending", DeployStatus.PENDING),
        ("in_progress", DeployStatus.IN_PROGRESS),
        ("success", DeployStatus.SUCCESS),
        ("failure", DeployStatus.FAILURE),
        ("error", DeployStatus.FAILURE),
    ],
)
def test_deployment_states(state: str, expected: DeployStatus) -> None:
    payload = load("deployment_status_success")
    payload["deployment_status"]["state"] = state
    [deploy] = event_of(payload, "deployment_status")
    assert deploy.status is expected
    terminal = expected in (DeployStatus.SUCCESS, DeployStatus.FAILURE)
    assert (deploy.finished_at is not None) is terminal


def test_inactive_deployment_status_is_not_news() -> None:
    payload = load("deployment_status_success")
    payload["deployment_status"]["state"] = "inactive"
    assert event_of(payload, "deployment_status") == []


def test_unknown_deployment_state_is_payload_error() -> None:
    payload = load("deployment_status_success")
    payload["deployment_status"]["state"] = "exploded"
    with pytest.raises(PayloadError, match="exploded"):
        event_of(payload, "deployment_status")


@pytest.mark.parametrize(
    "service_payload", [{"service": "checkout-api"}, '{"service": "checkout-api", "x": 1}']
)
def test_deployment_payload_names_the_service(service_payload: Any) -> None:
    payload = load("deployment_created_gh_pages")
    payload["deployment"]["payload"] = service_payload
    payload["deployment"]["description"] = "Deploy PR #42: faster checkout\nmore"
    [deploy] = event_of(payload, "deployment")
    assert deploy.service == "checkout-api"
    assert deploy.title == "Deploy PR #42: faster checkout"


def test_deployment_payload_junk_falls_back_to_repository() -> None:
    payload = load("deployment_created_gh_pages")
    for junk in ("{not json", "[1]", 7, None, ["service"], {"service": {"x": 1}}):
        payload["deployment"]["payload"] = junk
        [deploy] = event_of(payload, "deployment")
        assert deploy.service == "Hello-World"


@pytest.mark.parametrize(
    ("conclusion", "expected"),
    [
        ("success", DeployStatus.SUCCESS),
        ("neutral", DeployStatus.SUCCESS),
        ("failure", DeployStatus.FAILURE),
        ("timed_out", DeployStatus.FAILURE),
        ("cancelled", DeployStatus.CANCELLED),
        ("skipped", DeployStatus.CANCELLED),
        ("action_required", DeployStatus.PENDING),
        ("something_new", DeployStatus.FAILURE),
        (None, DeployStatus.FAILURE),
    ],
)
def test_workflow_run_conclusions(conclusion: str | None, expected: DeployStatus) -> None:
    payload = load("workflow_run_completed_success")
    payload["workflow_run"]["conclusion"] = conclusion
    [deploy] = event_of(payload, "workflow_run")
    assert deploy.status is expected


def test_workflow_run_in_progress() -> None:
    payload = load("workflow_run_requested")
    payload["action"] = "in_progress"
    payload["workflow_run"]["status"] = "in_progress"
    [deploy] = event_of(payload, "workflow_run")
    assert deploy.status is DeployStatus.IN_PROGRESS
    assert deploy.finished_at is None


def test_workflow_run_rerun_is_a_new_deploy() -> None:
    payload = load("workflow_run_completed_success")
    payload["workflow_run"]["run_attempt"] = 2
    [deploy] = event_of(payload, "workflow_run")
    assert deploy.source_ref == "workflow_run:289782451:attempt:2"


@pytest.mark.parametrize("trigger", ["pull_request", "pull_request_target", "merge_group"])
def test_pull_request_runs_are_not_deploys(trigger: str) -> None:
    payload = load("workflow_run_completed_success")
    payload["workflow_run"]["event"] = trigger
    assert event_of(payload, "workflow_run") == []


@pytest.mark.parametrize("event", ["ping", "push", "pull_request", "check_run", "release"])
def test_other_github_events_return_nothing(event: str) -> None:
    assert event_of({"zen": "Design for failure.", "hook_id": 1}, event) == []


def test_ping_recognised_without_header() -> None:
    assert github.normalise({"zen": "Keep it logically awesome.", "hook_id": 5}, delivery()) == []


def test_foreign_body_without_header_is_payload_error() -> None:
    with pytest.raises(PayloadError, match="X-GitHub-Event"):
        github.normalise({"alerts": []}, delivery())


def test_missing_parts_are_payload_errors() -> None:
    with pytest.raises(PayloadError, match="deployment"):
        event_of({"repository": {"name": "x"}}, "deployment")
    payload = load("deployment_created_gh_pages")
    del payload["deployment"]["id"]
    with pytest.raises(PayloadError, match=r"deployment\.id"):
        event_of(payload, "deployment")
    payload = load("workflow_run_requested")
    del payload["repository"]
    del payload["workflow_run"]["repository"]
    with pytest.raises(PayloadError, match="repository"):
        event_of(payload, "workflow_run")


# --- auth ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL)
def test_recorded_signature_verifies(name: str) -> None:
    body, headers, secret = recorded(name)
    github.verify(headers, body, secret, NOW)


def test_docs_test_vector() -> None:
    signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    github.verify(
        {"x-hub-signature-256": signature}, b"Hello, World!", "It's a Secret to Everybody", NOW
    )


def test_wrong_secret_or_changed_body_is_mismatch() -> None:
    body, headers, secret = recorded("deployment_status_success")
    with pytest.raises(AuthError) as wrong_secret:
        github.verify(headers, body, secret + "x", NOW)
    assert wrong_secret.value.reason == "signature_mismatch"
    with pytest.raises(AuthError) as changed_body:
        github.verify(headers, body.replace(b"success", b"failure", 1), secret, NOW)
    assert changed_body.value.reason == "signature_mismatch"


def test_missing_or_sha1_only_signature_is_missing() -> None:
    body, headers, secret = recorded("deployment_status_success")
    del headers["x-hub-signature-256"]
    assert "x-hub-signature" in headers  # the legacy SHA-1 one is not enough
    with pytest.raises(AuthError) as missing:
        github.verify(headers, body, secret, NOW)
    assert missing.value.reason == "missing_signature"


def test_delivery_id_header() -> None:
    _, headers, _ = recorded("deployment_status_success")
    assert github.DELIVERY_ID_HEADERS == ("x-github-delivery",)
    assert headers[github.DELIVERY_ID_HEADERS[0]] == "a2b0f5f0-8c3e-11ea-8f1f-5b7f3c0d9a01"


# --- robustness ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(
    event=st.sampled_from(["deployment", "deployment_status", "workflow_run", "ping", ""]),
    payload=json_values,
)
def test_any_json_is_deploys_or_payload_error(event: str, payload: Any) -> None:
    headers = {"x-github-event": event} if event else {}
    with contextlib.suppress(PayloadError):
        github.normalise(payload, delivery(headers))


REAL_KEYS = ["id", "state", "status", "conclusion", "created_at", "payload", "repository", "ref"]


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from([n for n in REAL if n != "workflow_job_completed_failure"]),
    part=st.sampled_from(["", "deployment", "deployment_status", "workflow_run"]),
    key=st.sampled_from(REAL_KEYS) | st.text(max_size=15),
    value=json_values,
)
def test_mutated_real_payloads_never_raise_other_errors(
    name: str, part: str, key: str, value: Any
) -> None:
    body, headers, _ = recorded(name)
    payload = copy.deepcopy(json.loads(body))
    target = payload[part] if isinstance(payload.get(part), dict) else payload
    target[key] = value
    with contextlib.suppress(PayloadError):
        github.normalise(payload, delivery(headers))


def test_huge_strings_are_truncated() -> None:
    payload = load("deployment_created_gh_pages")
    payload["deployment"]["description"] = "x" * 100_000
    payload["repository"]["name"] = "r" * 10_000
    [deploy] = event_of(payload, "deployment")
    assert len(deploy.title) == 1024
    assert len(deploy.service) == 256
