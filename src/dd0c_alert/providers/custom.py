"""Any sender that can sign a request: dd0c/alert's own documented JSON schema.

Body: one object or an array of objects. An alert object has ``title``, ``status``
(firing | resolved), ``severity``, ``service`` and optionally ``environment``,
``resource``, ``description``, ``labels``, ``links``, ``started_at`` (ISO 8601, the
event's own time), ``ended_at`` and ``fingerprint``. An object with ``"kind": "deploy"``
is a deploy event (``service``, ``environment``, ``version``, ``commit``, ``author``,
``title``, ``url``, ``status``, ``started_at``, ``finished_at``, optional ``id``).

Auth: ``X-DD0C-Timestamp`` and ``X-DD0C-Signature: v1=hex(hmac_sha256(secret,
timestamp + "." + body))``; the timestamp must be within 300 s of now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dd0c_alert.domain.fingerprint import computed_fingerprint, native_fingerprint
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Normalised,
)
from dd0c_alert.domain.severity import parse_severity
from dd0c_alert.domain.urls import web_url

from . import parse
from .auth import any_signature_matches, check_timestamp, hmac_sha256_hex
from .base import AuthError, Delivery, PayloadError

NAME = "custom"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

_IDENTITY_LABELS = ("instance", "host", "pod", "resource", "region", "cluster")

_DEPLOY_STATUSES = {
    "pending": DeployStatus.PENDING,
    "queued": DeployStatus.PENDING,
    "started": DeployStatus.IN_PROGRESS,
    "running": DeployStatus.IN_PROGRESS,
    "in_progress": DeployStatus.IN_PROGRESS,
    "success": DeployStatus.SUCCESS,
    "succeeded": DeployStatus.SUCCESS,
    "finished": DeployStatus.SUCCESS,
    "failure": DeployStatus.FAILURE,
    "failed": DeployStatus.FAILURE,
    "error": DeployStatus.FAILURE,
    "cancelled": DeployStatus.CANCELLED,
    "canceled": DeployStatus.CANCELLED,
}


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    stamp = headers.get("x-dd0c-timestamp", "")
    signature = headers.get("x-dd0c-signature", "")
    if not stamp or not signature:
        raise AuthError("missing_signature", "X-DD0C-Timestamp and X-DD0C-Signature are required")
    check_timestamp(stamp, now)
    expected = "v1=" + hmac_sha256_hex(secret, stamp.encode() + b"." + body)
    if not any_signature_matches(expected, signature.split(",")):
        raise AuthError("signature_mismatch", "X-DD0C-Signature does not match the body")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    objects = parse.items(payload, "body")
    if not objects:
        raise PayloadError("body is an empty array")
    return parse.each(
        objects,
        lambda _, obj: _one(parse.mapping(obj, "the item"), delivery),
        delivery,
        "item {}".format,
    )


def _one(obj: Mapping[str, Any], delivery: Delivery) -> Normalised:
    if parse.text(obj.get("kind")).lower() == "deploy":
        return _deploy(obj, delivery)
    title = parse.text(obj.get("title"), 1024)
    if not title:
        raise PayloadError("an alert needs a non-empty 'title'")
    status_text = parse.text(obj.get("status")).lower() or "firing"
    if status_text not in ("firing", "resolved"):
        raise PayloadError(f"'status' must be 'firing' or 'resolved', got {status_text!r}")
    service = parse.text(obj.get("service"), 256)
    labels = parse.labels(obj.get("labels"))
    started = parse.timestamp(obj.get("started_at")) or delivery.received_at
    own_key = parse.text(obj.get("fingerprint"), 1024)
    if own_key:
        fingerprint = native_fingerprint(NAME, own_key)
    else:
        identity = {k: v for k, v in labels.items() if k in _IDENTITY_LABELS}
        if resource := parse.text(obj.get("resource")):
            identity["resource"] = resource
        fingerprint = computed_fingerprint(delivery.tenant_id, NAME, title, service, identity)
    status = AlertStatus(status_text)
    ended = parse.timestamp(obj.get("ended_at"))
    if status is AlertStatus.RESOLVED and ended is None:
        ended = delivery.received_at
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=own_key or fingerprint,
        fingerprint=fingerprint,
        status=status,
        severity=parse_severity(obj.get("severity")),
        title=title,
        description=parse.text(obj.get("description")),
        service=service,
        environment=parse.text(obj.get("environment"), 256),
        resource=parse.text(obj.get("resource"), 512),
        labels=labels,
        links={k: url for k, v in parse.labels(obj.get("links")).items() if (url := web_url(v))},
        started_at=started,
        received_at=delivery.received_at,
        ended_at=ended if status is AlertStatus.RESOLVED else None,
    )


def _deploy(obj: Mapping[str, Any], delivery: Delivery) -> DeployEvent:
    service = parse.text(obj.get("service"), 256)
    if not service:
        raise PayloadError("a deploy needs a non-empty 'service'")
    status_text = parse.text(obj.get("status")).lower() or "success"
    status = _DEPLOY_STATUSES.get(status_text)
    if status is None:
        raise PayloadError(f"unknown deploy 'status' {status_text!r}")
    started = parse.timestamp(obj.get("started_at")) or delivery.received_at
    environment = parse.text(obj.get("environment"), 256)
    version = parse.text(obj.get("version"), 256)
    commit = parse.text(obj.get("commit"), 256)
    # Without an id, a deploy is its service, environment and version: a resend of the
    # same deploy updates it instead of adding another.
    what = version or commit or started.isoformat()
    ref = parse.text(obj.get("id"), 256) or f"{service}:{environment}:{what}"
    return DeployEvent(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=ref,
        service=service,
        status=status,
        started_at=started,
        received_at=delivery.received_at,
        environment=environment,
        version=version,
        commit=commit,
        author=parse.text(obj.get("author"), 256),
        title=parse.text(obj.get("title"), 1024),
        url=parse.text(obj.get("url"), 2048),
        finished_at=parse.timestamp(obj.get("finished_at")),
    )
