"""GitHub deploys: Deployments and Actions workflow runs (repository, organisation or App webhook).

The event name is ``X-GitHub-Event``; a body replayed without it is recognised by shape.

- ``deployment`` (created) is a pending deploy and ``deployment_status`` its progress. Both
  use ``source_ref = "deployment:<deployment id>"``, so one deploy is one record. Actions
  jobs with ``environment:`` create these on their own: they are the precise deploy signal.
- ``workflow_run`` is a deploy with ``source_ref = "workflow_run:<run id>"`` (a re-run adds
  ``:attempt:<n>``: it is another execution, and folding it in would hide the failed one).
  Runs triggered by a pull request (``_PULL_REQUEST_EVENTS``) check unmerged code and
  return ``[]``. GitHub cannot filter this webhook per workflow, so the title names the
  workflow to tell a deploy from a test run.
- ``workflow_job`` returns ``[]``: a job is part of a run already reported by
  ``workflow_run``, and a deploying job also produces ``deployment_status``; counting it
  again would put the same deploy in front of an incident twice.
- ``deployment_status`` with state ``inactive`` returns ``[]``: GitHub marks an old
  deployment inactive when a newer one replaces it. The newer deploy has its own events;
  reading this as a status would rewrite the old deploy's end time.
- ``ping`` and every other event GitHub sends (``push``, ``pull_request``, ``check_run``,
  ``release``, …) return ``[]``.

Deploy events carry no severity. Status: deployment states in ``_DEPLOYMENT_STATES``, run
status / conclusion in ``_RUN_STATUSES`` / ``_RUN_CONCLUSIONS`` (an unknown conclusion is a
failure: a run that did not say it succeeded is not shown as a success).

Fields, first non-empty wins:
service = the deployment's JSON ``payload.service`` (``createDeployment`` with
``payload: {"service": "api"}`` for monorepos), else the repository name;
environment = the deployment's environment (``""`` for a run: it has none);
version = deployment ``ref`` / run ``head_branch``; commit = ``sha`` / ``head_sha``;
author = deployment creator / run actor / head commit author; title = the first line of
the deployment's description, else the run's display title or head commit message, else
"<task> <ref> to <env>" (runs: prefixed with the workflow name); url = the status'
``log_url`` / ``target_url`` / ``environment_url``, else the run's page, else the
repository's deployments page.
started_at = deployment ``created_at`` / ``run_started_at`` (the same on every update);
finished_at = the status' or run's update time once terminal.

Auth: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw body with the webhook
secret. The legacy SHA-1 ``X-Hub-Signature`` is not accepted. Redeliveries are recognised
by ``X-GitHub-Delivery``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dd0c_alert.domain.models import DeployEvent, DeployStatus, Normalised

from . import parse
from .auth import any_signature_matches, hmac_sha256_hex
from .base import AuthError, Delivery, PayloadError

NAME = "github"
DELIVERY_ID_HEADERS: tuple[str, ...] = ("x-github-delivery",)

_DEPLOYMENT_STATES: dict[str, DeployStatus] = {
    "queued": DeployStatus.PENDING,
    "pending": DeployStatus.PENDING,
    "waiting": DeployStatus.PENDING,
    "in_progress": DeployStatus.IN_PROGRESS,
    "success": DeployStatus.SUCCESS,
    "failure": DeployStatus.FAILURE,
    "error": DeployStatus.FAILURE,
}
_RUN_STATUSES: dict[str, DeployStatus] = {
    "requested": DeployStatus.PENDING,
    "queued": DeployStatus.PENDING,
    "waiting": DeployStatus.PENDING,
    "pending": DeployStatus.PENDING,
    "in_progress": DeployStatus.IN_PROGRESS,
}
_RUN_CONCLUSIONS: dict[str, DeployStatus] = {
    "success": DeployStatus.SUCCESS,
    "neutral": DeployStatus.SUCCESS,
    "failure": DeployStatus.FAILURE,
    "timed_out": DeployStatus.FAILURE,
    "startup_failure": DeployStatus.FAILURE,
    "cancelled": DeployStatus.CANCELLED,
    "skipped": DeployStatus.CANCELLED,
    "stale": DeployStatus.CANCELLED,
    "action_required": DeployStatus.PENDING,  # waits for approval, then runs under the same id
}
_TERMINAL = frozenset((DeployStatus.SUCCESS, DeployStatus.FAILURE, DeployStatus.CANCELLED))
_PULL_REQUEST_EVENTS = frozenset(
    ("pull_request", "pull_request_target", "pull_request_review", "merge_group")
)


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    signature = headers.get("x-hub-signature-256", "").strip()
    if not signature:
        raise AuthError("missing_signature", "X-Hub-Signature-256 is required (SHA-1 is not)")
    expected = "sha256=" + hmac_sha256_hex(secret, body)
    if not any_signature_matches(expected, [signature]):
        raise AuthError("signature_mismatch", "X-Hub-Signature-256 does not match the body")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    body = parse.mapping(payload, "body")
    event = _event_name(body, delivery.headers)
    if event == "deployment":
        return [_deployment(body, None, delivery)]
    if event == "deployment_status":
        status = parse.mapping(body.get("deployment_status"), "'deployment_status'")
        return [] if _state(status) == "inactive" else [_deployment(body, status, delivery)]
    if event == "workflow_run":
        run = parse.mapping(body.get("workflow_run"), "'workflow_run'")
        if parse.text(run.get("event")) in _PULL_REQUEST_EVENTS:
            return []
        return [_workflow_run(body, run, delivery)]
    return []  # ping, workflow_job and GitHub's other events: see the module docstring


def _event_name(body: Mapping[str, Any], headers: Mapping[str, str]) -> str:
    if name := parse.text(headers.get("x-github-event"), 128):
        return name
    for name in ("deployment_status", "deployment", "workflow_job", "workflow_run"):
        if isinstance(body.get(name), Mapping):
            return name
    if "zen" in body and "hook_id" in body:
        return "ping"
    raise PayloadError(
        "not a GitHub deployment, deployment_status or workflow_run body "
        "(and no X-GitHub-Event header to say what it is)"
    )


def _state(status: Mapping[str, Any]) -> str:
    return parse.text(status.get("state"), 64).lower()


def _deployment(
    body: Mapping[str, Any], status: Mapping[str, Any] | None, delivery: Delivery
) -> DeployEvent:
    deployment = parse.mapping(body.get("deployment"), "'deployment'")
    deployment_id = parse.text(deployment.get("id"), 64)
    if not deployment_id:
        raise PayloadError("'deployment.id' is missing")
    deploy_status = DeployStatus.PENDING
    finished: datetime | None = None
    url = ""
    if status is not None:
        state = _state(status)
        if state not in _DEPLOYMENT_STATES:
            raise PayloadError(f"unknown deployment_status state {state!r}")
        deploy_status = _DEPLOYMENT_STATES[state]
        if deploy_status in _TERMINAL:
            finished = (
                parse.timestamp(status.get("created_at"))
                or parse.timestamp(status.get("updated_at"))
                or delivery.received_at
            )
        url = parse.first_text(
            status.get("log_url"), status.get("target_url"), status.get("environment_url")
        )
    environment = parse.text(deployment.get("environment"), 256)
    ref = parse.text(deployment.get("ref"), 256)
    run = parse.dig(body, "workflow_run")
    title = parse.first_text(
        _first_line(deployment.get("description")),
        parse.dig(run, "display_title"),
        _first_line(parse.dig(run, "head_commit", "message")),
        " ".join(
            filter(None, (parse.text(deployment.get("task")) or "deploy", ref, "to", environment))
        ),
    )
    return DeployEvent(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=f"deployment:{deployment_id}",
        service=_service(body, _payload_service(deployment.get("payload"))),
        status=deploy_status,
        started_at=parse.timestamp(deployment.get("created_at")) or delivery.received_at,
        received_at=delivery.received_at,
        environment=environment,
        version=ref,
        commit=parse.text(deployment.get("sha"), 256),
        author=parse.text(parse.dig(deployment, "creator", "login"), 256),
        title=title[:1024],
        url=(
            url
            or parse.text(parse.dig(run, "html_url"))
            or _suffix(parse.text(parse.dig(body, "repository", "html_url")), "/deployments")
        )[:2048],
        finished_at=finished,
    )


def _workflow_run(
    body: Mapping[str, Any], run: Mapping[str, Any], delivery: Delivery
) -> DeployEvent:
    run_id = parse.text(run.get("id"), 64)
    if not run_id:
        raise PayloadError("'workflow_run.id' is missing")
    attempt = parse.text(run.get("run_attempt"), 16)
    status = _run_status(run, parse.text(body.get("action")).lower())
    workflow = parse.first_text(parse.dig(body, "workflow", "name"), run.get("name"))
    summary = parse.first_text(
        run.get("display_title"), _first_line(parse.dig(run, "head_commit", "message"))
    )
    title = f"{workflow}: {summary}" if workflow and summary else workflow or summary
    finished = None
    if status in _TERMINAL:
        finished = parse.timestamp(run.get("updated_at")) or delivery.received_at
    return DeployEvent(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=f"workflow_run:{run_id}"
        + (f":attempt:{attempt}" if attempt not in ("", "1") else ""),
        service=_service(body, parse.dig(run, "repository", "name")),
        status=status,
        started_at=parse.timestamp(run.get("run_started_at"))
        or parse.timestamp(run.get("created_at"))
        or delivery.received_at,
        received_at=delivery.received_at,
        version=parse.text(run.get("head_branch"), 256),
        commit=parse.first_text(run.get("head_sha"), parse.dig(run, "head_commit", "id"))[:256],
        author=parse.first_text(
            parse.dig(run, "actor", "login"),
            parse.dig(run, "triggering_actor", "login"),
            parse.dig(run, "head_commit", "author", "name"),
        )[:256],
        title=title[:1024],
        url=parse.text(run.get("html_url"), 2048),
        finished_at=finished,
    )


def _run_status(run: Mapping[str, Any], action: str) -> DeployStatus:
    status = parse.text(run.get("status"), 64).lower() or action
    if status == "completed":
        conclusion = parse.text(run.get("conclusion"), 64).lower()
        return _RUN_CONCLUSIONS.get(conclusion, DeployStatus.FAILURE)
    if status in _RUN_STATUSES:
        return _RUN_STATUSES[status]
    raise PayloadError(f"unknown workflow_run status {status!r}")


def _service(body: Mapping[str, Any], preferred: Any) -> str:
    service = parse.first_text(preferred, parse.dig(body, "repository", "name"))[:256]
    if not service:
        raise PayloadError("the body has no 'repository.name' to name the deployed service")
    return service


def _payload_service(value: Any) -> str:
    """The ``service`` key of a deployment's free-form payload (an object or JSON text)."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        try:
            value = json.loads(value[:65536])
        except (ValueError, RecursionError):
            return ""
    return parse.text(parse.dig(value, "service"), 256)


def _first_line(value: Any) -> str:
    return parse.text(value).split("\n", 1)[0].strip()


def _suffix(base: str, suffix: str) -> str:
    return base + suffix if base else ""
