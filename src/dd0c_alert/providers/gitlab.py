"""GitLab deploys: Deployment events, and pipelines that run deploy jobs (project or group webhook).

The kind is the body's ``object_kind`` (else the ``X-Gitlab-Event`` header).

- ``deployment`` (Deployment events) is the precise signal: GitLab sends one per status
  change of a job with ``environment:``. ``source_ref = "deployment:<deployment_id>"``,
  so running → success update one record. Statuses in ``_DEPLOYMENT_STATUSES``.
- ``pipeline`` (Pipeline events) is a deploy only once one of its deploy jobs (a job
  with an ``environment`` whose action is ``start``) has run or is running. A pipeline that
  only builds and tests changes nothing in production, and a manual production job left
  unplayed deploys nothing: recording those would offer every CI run as the "likely
  cause" of the next incident, so they return ``[]`` (to see a deploy that has no
  ``environment:``, add one to its job, or send it through the ``custom`` provider).
  ``source_ref = "pipeline:<id>"``. Status and environment follow the started deploy jobs,
  not the pipeline: in progress while one runs, else failure if one failed, success if
  one succeeded, cancelled if all were cancelled (a failing test after a good deploy
  does not undo the deploy). Enabling Pipeline and Deployment events together records
  each deploy twice (once per source_ref): prefer Deployment events alone.
- ``build`` (Job events) returns ``[]``: a deploy job already produces a Deployment
  event with the deployment's own id, and other jobs deploy nothing.
- Every other GitLab hook (push, tag_push, merge_request, note, issue, release, …)
  returns ``[]``.

Deploy events carry no severity.

Fields, first non-empty wins: service = the project's path (``gitlab-org/gitlab-test`` →
``gitlab-test``: the URL slug, which is how services are usually named, unlike the display
name "Gitlab Test"), else its name; environment = the deployment's environment / the started
deploy jobs' environments (sorted, comma-joined when several); version = ``ref`` (branch or tag);
commit = full SHA (deployment: the tail of ``commit_url``, else ``short_sha``);
author = username, else name; title = commit title / the commit message's first line,
else the merge request title; url = the deploying job / the pipeline page.
started_at = the deployment's ``status_changed_at`` (a Deployment event has no separate start
time) / the first deploy job's start, else the pipeline's ``created_at``; finished_at = the
status change / the last deploy job's end (else the pipeline's) once terminal.

Auth: ``X-Gitlab-Token`` equals the webhook's secret token (GitLab sends it verbatim).
Redeliveries are recognised by ``Idempotency-Key`` / ``X-Gitlab-Event-UUID``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dd0c_alert.domain.models import DeployEvent, DeployStatus, Normalised

from . import parse
from .auth import same
from .base import AuthError, Delivery, PayloadError

NAME = "gitlab"
DELIVERY_ID_HEADERS: tuple[str, ...] = ("idempotency-key", "x-gitlab-event-uuid")

_DEPLOYMENT_STATUSES: dict[str, DeployStatus] = {
    "created": DeployStatus.PENDING,
    "blocked": DeployStatus.PENDING,
    "running": DeployStatus.IN_PROGRESS,
    "success": DeployStatus.SUCCESS,
    "failed": DeployStatus.FAILURE,
    "canceled": DeployStatus.CANCELLED,
    "skipped": DeployStatus.CANCELLED,
}
_STARTED_JOB = frozenset(("running", "canceling", "success", "failed", "canceled"))
# A pipeline's deploy status from its started deploy jobs' statuses, first match wins.
_JOB_PRECEDENCE = (
    ("running", DeployStatus.IN_PROGRESS),
    ("canceling", DeployStatus.IN_PROGRESS),
    ("failed", DeployStatus.FAILURE),
    ("success", DeployStatus.SUCCESS),
)
_TERMINAL = frozenset((DeployStatus.SUCCESS, DeployStatus.FAILURE, DeployStatus.CANCELLED))
_HEADER_KINDS = {"Deployment Hook": "deployment", "Pipeline Hook": "pipeline", "Job Hook": "build"}
_OTHER_KINDS = frozenset(
    (
        "build",
        "push",
        "tag_push",
        "merge_request",
        "note",
        "issue",
        "wiki_page",
        "release",
        "feature_flag",
        "emoji",
        "access_token",
        "member",
        "subgroup",
        "project",
        "milestone",
        "vulnerability",
    )
)
_FULL_SHA = re.compile(r"[0-9a-f]{40}")


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    token = headers.get("x-gitlab-token", "")
    if not token:
        raise AuthError("missing_signature", "X-Gitlab-Token is required")
    if not same(token, secret):
        raise AuthError("signature_mismatch", "X-Gitlab-Token does not match the secret token")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    body = parse.mapping(payload, "body")
    header = parse.text(delivery.headers.get("x-gitlab-event"), 128)
    kind = parse.text(body.get("object_kind"), 64) or _HEADER_KINDS.get(header, "")
    if kind == "deployment":
        return [_deployment(body, delivery)]
    if kind == "pipeline":
        return _pipeline(body, delivery)
    if kind in _OTHER_KINDS or header.endswith(" Hook"):
        return []  # jobs and GitLab's other hooks: see the module docstring
    raise PayloadError("not a GitLab webhook body: no known 'object_kind' or X-Gitlab-Event")


def _deployment(body: Mapping[str, Any], delivery: Delivery) -> DeployEvent:
    deployment_id = parse.text(body.get("deployment_id"), 64)
    if not deployment_id:
        raise PayloadError("a Deployment event needs 'deployment_id'")
    status_text = parse.text(body.get("status"), 64).lower()
    status = _DEPLOYMENT_STATUSES.get(status_text)
    if status is None:
        raise PayloadError(f"unknown deployment 'status' {status_text!r}")
    changed = parse.timestamp(body.get("status_changed_at")) or delivery.received_at
    commit_url = parse.text(body.get("commit_url"), 2048)
    tail = commit_url.rstrip("/").rsplit("/", 1)[-1]
    return DeployEvent(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=f"deployment:{deployment_id}",
        service=_service(body),
        status=status,
        started_at=changed,
        received_at=delivery.received_at,
        environment=parse.text(body.get("environment"), 256),
        version=parse.text(body.get("ref"), 256),
        commit=tail if _FULL_SHA.fullmatch(tail) else parse.text(body.get("short_sha"), 256),
        author=_author(body.get("user")),
        title=_first_line(body.get("commit_title"))[:1024],
        url=parse.first_text(body.get("deployable_url"), body.get("environment_external_url"))[
            :2048
        ],
        finished_at=changed if status in _TERMINAL else None,
    )


def _pipeline(body: Mapping[str, Any], delivery: Delivery) -> list[Normalised]:
    pipeline = parse.mapping(body.get("object_attributes"), "'object_attributes'")
    pipeline_id = parse.text(pipeline.get("id"), 64)
    if not pipeline_id:
        raise PayloadError("a Pipeline event needs 'object_attributes.id'")
    builds = body.get("builds")
    jobs = [
        job
        for job in (builds if isinstance(builds, list) else [])
        if _deploys(job) and parse.text(job.get("status")).lower() in _STARTED_JOB
    ]
    if not jobs:
        return []  # builds and tests only, or deploy jobs that have not run: nothing deployed
    job_statuses = {parse.text(job.get("status")).lower() for job in jobs}
    status = next(
        (status for job_status, status in _JOB_PRECEDENCE if job_status in job_statuses),
        DeployStatus.CANCELLED,
    )
    environments = {parse.text(parse.dig(job, "environment", "name"), 256) for job in jobs}
    job_starts = [t for job in jobs if (t := parse.timestamp(job.get("started_at")))]
    job_ends = [t for job in jobs if (t := parse.timestamp(job.get("finished_at")))]
    finished: datetime | None = None
    if status in _TERMINAL:
        finished = (
            max(job_ends, default=None)
            or parse.timestamp(pipeline.get("finished_at"))
            or delivery.received_at
        )
    web_url = parse.text(parse.dig(body, "project", "web_url"), 1024)
    return [
        DeployEvent(
            tenant_id=delivery.tenant_id,
            source=NAME,
            source_ref=f"pipeline:{pipeline_id}",
            service=_service(body),
            status=status,
            started_at=min(job_starts, default=None)
            or parse.timestamp(pipeline.get("created_at"))
            or delivery.received_at,
            received_at=delivery.received_at,
            environment=",".join(sorted(environments))[:256],
            version=parse.text(pipeline.get("ref"), 256),
            commit=parse.first_text(pipeline.get("sha"), parse.dig(body, "commit", "id"))[:256],
            author=_author(body.get("user")),
            title=parse.first_text(
                _first_line(parse.dig(body, "commit", "message")),
                parse.dig(body, "merge_request", "title"),
                pipeline.get("name"),
            )[:1024],
            url=parse.first_text(
                pipeline.get("url"), f"{web_url}/-/pipelines/{pipeline_id}" if web_url else ""
            )[:2048],
            finished_at=finished,
        )
    ]


def _deploys(job: Any) -> bool:
    """A job that deploys: it has an environment it starts (not stop / prepare / verify)."""
    environment = parse.dig(job, "environment")
    if not parse.text(parse.dig(environment, "name")):
        return False
    return parse.text(parse.dig(environment, "action")).lower() in ("", "start")


def _service(body: Mapping[str, Any]) -> str:
    project = parse.dig(body, "project")
    path = parse.text(parse.dig(project, "path_with_namespace"), 1024).rstrip("/")
    service = parse.first_text(path.rsplit("/", 1)[-1], parse.dig(project, "name"))[:256]
    if not service:
        raise PayloadError("the body has no 'project' path or name to name the deployed service")
    return service


def _author(user: Any) -> str:
    return parse.first_text(parse.dig(user, "username"), parse.dig(user, "name"))[:256]


def _first_line(value: Any) -> str:
    return parse.text(value).split("\n", 1)[0].strip()
