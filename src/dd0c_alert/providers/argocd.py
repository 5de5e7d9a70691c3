"""Argo CD deploys from argocd-notifications' generic webhook service.

Argo CD has no fixed webhook body: it sends whatever the notification template renders.
The recommended template below sends one flat object per sync; paste it into
``argocd-notifications-cm`` (keep any ``message`` / ``slack`` keys a catalog template
already has beside ``webhook``), put the same ``webhook:`` block into
``template.app-sync-running`` and ``template.app-sync-failed`` so a sync's start and end
both arrive, and subscribe apps with the annotations
``notifications.argoproj.io/subscribe.on-sync-running.dd0c: ""`` (likewise
``on-sync-succeeded`` and ``on-sync-failed``). Sprig's ``dig`` reads fields that an app may
lack without the template failing on a nil, and ``toJson`` quotes whatever they hold
(``.context.argocdUrl`` is the ``argocdUrl`` key of the ConfigMap's ``context``)::

    service.webhook.dd0c: |
      url: https://<dd0c host>/v1/wh/<tenant id>/argocd
      headers:
        - name: Content-Type
          value: application/json
        - name: Authorization
          value: Bearer $dd0c-token   # key "dd0c-token" in argocd-notifications-secret
    template.app-sync-succeeded: |
      webhook:
        dd0c:
          method: POST
          body: |
            {{- $op := dig "status" "operationState" (dict) .app -}}
            {{- $sync := dig "status" "sync" (dict) .app -}}
            {{- $dest := dig "spec" "destination" (dict) .app -}}
            {
              "app": {{ .app.metadata.name | toJson }},
              "project": {{ .app.spec.project | toJson }},
              "revision": {{ dig "syncResult" "revision" (dig "revision" "" $sync) $op | toJson }},
              "phase": {{ dig "phase" "" $op | toJson }},
              "sync_status": {{ dig "status" "" $sync | toJson }},
              "health_status": {{ dig "status" "health" "status" "" .app | toJson }},
              "started_at": {{ dig "startedAt" "" $op | toJson }},
              "finished_at": {{ dig "finishedAt" "" $op | toJson }},
              "message": {{ dig "message" "" $op | toJson }},
              "author": {{ dig "operation" "initiatedBy" "username" "automated" $op | toJson }},
              "repo_url": {{ dig "spec" "source" "repoURL" "" .app | toJson }},
              "namespace": {{ dig "namespace" "" $dest | toJson }},
              "server": {{ dig "server" (dig "name" "" $dest) $dest | toJson }},
              "labels": {{ dig "metadata" "labels" (dict) .app | toJson }},
              "url": {{ print .context.argocdUrl "/applications/" .app.metadata.name | toJson }}
            }

Optional keys: ``"service"`` and ``"environment"`` (override the rules below),
``"commit_message"`` (for git sources: ``{{ (call .repo.GetCommitMetadata <revision>).Message
| toJson }}``, the deploy's title). Also understood, so existing setups work unchanged:
the whole Application under ``"application"`` or ``"app"`` (``{"application": {{ toJson .app
}}}``) or as the body itself; camelCase spellings (``syncStatus``, ``operationPhase``,
``startedAt``, …); and minimal bodies such as ``{"app": "...", "status": "Succeeded"}``.
Flat keys win over the Application object. A body without an app name is a PayloadError.
``project``, ``repo_url`` and ``server`` have no deploy field: they stay in the archived body.

Status: the operation ``phase`` (``_PHASES``: Running in progress, Terminating cancelled,
Succeeded success, Failed / Error failure), else a ``status`` word (``_STATUS_WORDS``),
else health / sync (Degraded or Missing failure, Progressing in progress, Synced or
Healthy success, OutOfSync pending), else success: a template with no state at all is
one attached to on-deployed / on-sync-succeeded. A phase or status word we do not know
is a PayloadError naming it. Deploy events carry no severity.

Fields: service = ``service``, else label ``dd0c.io/service``, else the app name;
environment = ``environment``, else label ``dd0c.io/environment`` / ``environment`` /
``env``, else the destination namespace; version = revision; commit = revision when it is
a git SHA; author = ``author`` (the user who synced, or "automated"); title =
commit message's first line, else ``title``, else the operation message; url = ``url``.
``source_ref`` = "<app>@<started_at>": the operation's start time names one sync of one
app and is in every notification of it, whereas the sync result's revision can still be
empty when on-sync-running fires. Without a start time it is "<app>@<revision>", else
"<app>@<received_at>" (each notification then stands alone). started_at = the operation
start, else received_at; finished_at = the operation end (else received_at) once terminal.

Auth: a static token, as Argo CD's webhook service can only send fixed headers:
``Authorization: Bearer <secret>``, basic auth (``basicAuth`` in the service config), or
``X-DD0C-Token``. Argo CD sends no delivery id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dd0c_alert.domain.models import DeployEvent, DeployStatus, Normalised

from . import parse
from .auth import verify_token
from .base import Delivery, PayloadError

NAME = "argocd"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

_PHASES: dict[str, DeployStatus] = {
    "running": DeployStatus.IN_PROGRESS,
    "terminating": DeployStatus.CANCELLED,
    "succeeded": DeployStatus.SUCCESS,
    "failed": DeployStatus.FAILURE,
    "error": DeployStatus.FAILURE,
}
_STATUS_WORDS: dict[str, DeployStatus] = {
    **_PHASES,
    **dict.fromkeys(("pending", "queued", "outofsync"), DeployStatus.PENDING),
    **dict.fromkeys(
        ("inprogress", "progressing", "syncing", "started", "deploying"), DeployStatus.IN_PROGRESS
    ),
    **dict.fromkeys(
        ("success", "successful", "synced", "healthy", "deployed", "completed", "ok"),
        DeployStatus.SUCCESS,
    ),
    **dict.fromkeys(("failure", "fail", "syncfailed", "degraded", "missing"), DeployStatus.FAILURE),
    **dict.fromkeys(("cancelled", "canceled", "terminated", "aborted"), DeployStatus.CANCELLED),
}
_TERMINAL = frozenset((DeployStatus.SUCCESS, DeployStatus.FAILURE, DeployStatus.CANCELLED))
_GIT_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

# Each field of the recommended template, and the spellings other templates use for it.
_ALIASES: dict[str, tuple[str, ...]] = {
    "app": ("app", "application", "app_name", "appName", "name"),
    "revision": ("revision", "sync_revision", "syncRevision", "commit", "sha"),
    "phase": ("phase", "operation_phase", "operationPhase"),
    "status": ("status", "state"),
    "sync_status": ("sync_status", "syncStatus", "sync"),
    "health_status": ("health_status", "healthStatus", "health"),
    "started_at": ("started_at", "startedAt"),
    "finished_at": ("finished_at", "finishedAt"),
    "namespace": ("namespace", "destination_namespace", "destinationNamespace"),
    "message": ("message",),
    "author": ("author", "initiated_by", "initiatedBy", "user"),
    "commit_message": ("commit_message", "commitMessage"),
    "title": ("title",),
    "url": ("url", "app_url", "appUrl"),
    "service": ("service",),
    "environment": ("environment", "env"),
}


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    verify_token(headers, secret)


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    body = parse.mapping(payload, "body")
    fields, labels = _fields(body)
    app = fields.get("app", "")
    if not app:
        raise PayloadError(
            "no Argo CD application name ('app', or an Application under 'application'): "
            "use the template documented for the argocd provider"
        )
    status = _status(fields)
    revision = fields.get("revision", "")
    started = parse.timestamp(fields.get("started_at"))
    finished = None
    if status in _TERMINAL:
        finished = parse.timestamp(fields.get("finished_at")) or delivery.received_at
    instance = started.isoformat() if started else revision or delivery.received_at.isoformat()
    return [
        DeployEvent(
            tenant_id=delivery.tenant_id,
            source=NAME,
            source_ref=f"{app}@{instance}"[:512],
            service=parse.first_text(fields.get("service"), labels.get("dd0c.io/service"), app)[
                :256
            ],
            status=status,
            started_at=started or delivery.received_at,
            received_at=delivery.received_at,
            environment=parse.first_text(
                fields.get("environment"),
                labels.get("dd0c.io/environment"),
                labels.get("environment"),
                labels.get("env"),
                fields.get("namespace"),
            )[:256],
            version=revision[:256],
            commit=revision if _GIT_SHA.fullmatch(revision.lower()) else "",
            author=fields.get("author", "")[:256],
            title=parse.first_text(
                fields.get("commit_message", "").split("\n", 1)[0],
                fields.get("title"),
                fields.get("message"),
            )[:1024],
            url=fields.get("url", "")[:2048],
            finished_at=finished,
        )
    ]


def _fields(body: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The template's fields by canonical name, and the app's labels."""
    application = next(
        (
            candidate
            for candidate in (body.get("application"), body.get("app"), body)
            if isinstance(candidate, Mapping) and isinstance(candidate.get("metadata"), Mapping)
        ),
        None,
    )
    fields = _from_application(application) if application is not None else {}
    for name, spellings in _ALIASES.items():
        if value := parse.first_text(*(body.get(spelling) for spelling in spellings)):
            fields[name] = value
    labels = parse.labels(parse.dig(application, "metadata", "labels"))
    labels.update(parse.labels(body.get("labels")))
    return fields, labels


def _from_application(app: Mapping[str, Any]) -> dict[str, str]:
    """The recommended template's fields, read from an Argo CD Application object."""
    operation = parse.dig(app, "status", "operationState")
    initiated_by = parse.dig(operation, "operation", "initiatedBy")
    automated = parse.dig(initiated_by, "automated") is True
    values = {
        "app": parse.dig(app, "metadata", "name"),
        "revision": parse.first_text(
            parse.dig(operation, "syncResult", "revision"),
            parse.dig(app, "status", "sync", "revision"),
        ),
        "phase": parse.dig(operation, "phase"),
        "sync_status": parse.dig(app, "status", "sync", "status"),
        "health_status": parse.dig(app, "status", "health", "status"),
        "started_at": parse.dig(operation, "startedAt"),
        "finished_at": parse.dig(operation, "finishedAt"),
        "namespace": parse.dig(app, "spec", "destination", "namespace"),
        "message": parse.dig(operation, "message"),
        "author": parse.first_text(
            parse.dig(initiated_by, "username"), "automated" if automated else ""
        ),
    }
    return {name: text for name, value in values.items() if (text := parse.text(value, 1024))}


def _status(fields: Mapping[str, str]) -> DeployStatus:
    for name, table in (("phase", _PHASES), ("status", _STATUS_WORDS)):
        if word := fields.get(name, ""):
            status = table.get(_word(word))
            if status is None:
                raise PayloadError(f"unknown Argo CD {name} {word[:64]!r}: see the argocd provider")
            return status
    health = _word(fields.get("health_status", ""))
    sync = _word(fields.get("sync_status", ""))
    if health in ("degraded", "missing"):
        return DeployStatus.FAILURE
    if health == "progressing":
        return DeployStatus.IN_PROGRESS
    if sync == "outofsync":
        return DeployStatus.PENDING
    return DeployStatus.SUCCESS  # Synced / Healthy, or no state at all (an on-deployed template)


def _word(value: str) -> str:
    return re.sub(r"[\s_-]", "", value).lower()
