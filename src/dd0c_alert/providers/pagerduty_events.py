"""PagerDuty Events API v2 bodies: any tool that "sends to PagerDuty" can send here.

Body: one event or an array of them. An alert event has ``event_action`` (trigger |
acknowledge | resolve), ``dedup_key`` and, for a trigger, ``payload`` (``summary``,
``source``, ``severity``, ``timestamp``, ``component``, ``group``, ``class``,
``custom_details``) plus optional ``links``, ``images``, ``client`` and ``client_url``.
An event without ``event_action`` but with a ``payload`` is a change event and becomes
a successful DeployEvent: PagerDuty change events report something that already
happened (a deploy, a build, a config change) and carry no outcome of their own.

Status: trigger and acknowledge → firing (an acknowledged problem is still a problem;
``labels["pagerduty_action"]`` tells them apart), resolve → resolved. Acknowledge and
resolve carry no payload, so their title falls back to the dedup key, their severity
is medium and their time is the delivery's.

Severity (``payload.severity``): critical → critical, error → high, warning → medium,
info → info; anything else → medium.

Fingerprint: the ``dedup_key``, which the sender repeats on acknowledge and resolve.
A trigger without one gets PagerDuty-like identity: a hash of summary, source,
component and class. ``service``: ``custom_details.service`` / ``service_name``, else
``payload.group`` (PagerDuty's "logical grouping of components of a service"), else
``payload.component``; ``resource`` is ``payload.source`` (the affected host or
location); ``environment`` is ``custom_details.environment`` / ``env``. For a change
event ``service`` is ``custom_details.service`` / ``service_name``, else
``payload.source``.

Auth: the body's ``routing_key`` must equal the integration secret (every event's, for
an array). It is a credential, so it never appears in any output: wherever it occurs
(a dedup key equal to it, a summary quoting it) it is replaced by ``[redacted]``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from dd0c_alert.domain.fingerprint import computed_fingerprint, native_fingerprint
from dd0c_alert.domain.models import (
    AlertStatus,
    CanonicalAlert,
    DeployEvent,
    DeployStatus,
    Normalised,
    Severity,
)

from . import parse
from .auth import same
from .base import AuthError, Delivery, PayloadError

NAME = "pagerduty-events"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

_SEVERITIES: dict[str, Severity] = {
    "critical": Severity.CRITICAL,
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.INFO,
}
_ACTIONS = ("trigger", "acknowledge", "resolve")
_REDACTED = "[redacted]"
_KEEP_FIELDS = frozenset(("tenant_id", "source", "id", "event_id", "raw_ref"))


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    try:
        # The parser ingestion uses: a body it accepts must not fail here (stdlib json
        # gives up on nesting orjson still reads).
        document = parse.json_document(body)
    except orjson.JSONDecodeError:
        raise AuthError("missing_signature", "body is not JSON, so it has no routing_key") from None
    events = document if isinstance(document, list) else [document]
    keys = [event.get("routing_key") if isinstance(event, dict) else None for event in events]
    presented = [key for key in keys if isinstance(key, str) and key]
    if not keys or len(presented) != len(keys):
        raise AuthError("missing_signature", "every event needs a 'routing_key'")
    # Compare every key so timing does not reveal which one differed.
    matches = [same(key, secret) for key in presented]
    if not all(matches):
        raise AuthError("signature_mismatch", "routing_key does not match the integration secret")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    events = parse.items(payload, "body")
    if not events:
        raise PayloadError("body is an empty array")

    def read(index: int, item: Any) -> Normalised:
        event = parse.mapping(item, "the event" if isinstance(payload, list) else "body")
        routing_key = event.get("routing_key")
        secret = routing_key if isinstance(routing_key, str) else ""
        return _redact(_one(event, delivery, secret), secret)

    return parse.each(events, read, delivery, "event {}".format)


def _one(event: Mapping[str, Any], delivery: Delivery, secret: str) -> Normalised:
    action = parse.text(event.get("event_action"), 64).lower()
    body = event.get("payload")
    if not action:
        if isinstance(body, Mapping):
            return _change(event, body, delivery)
        raise PayloadError(
            "not a PagerDuty Events API v2 event: it needs 'event_action' "
            "(trigger, acknowledge or resolve) or a change event's 'payload'"
        )
    if action not in _ACTIONS:
        raise PayloadError(f"unknown 'event_action' {action!r}; expected one of {_ACTIONS}")
    return _alert(event, action, body if isinstance(body, Mapping) else {}, delivery, secret)


def _alert(
    event: Mapping[str, Any],
    action: str,
    body: Mapping[str, Any],
    delivery: Delivery,
    secret: str,
) -> CanonicalAlert:
    dedup_key = parse.text(event.get("dedup_key"), 1024)
    if secret:
        dedup_key = dedup_key.replace(secret, _REDACTED)
    summary = parse.text(body.get("summary"), 1024)
    if action != "trigger" and not dedup_key:
        raise PayloadError(f"an {action} event needs a 'dedup_key'")
    title = summary or dedup_key
    if not title:
        raise PayloadError("a trigger event needs 'payload.summary' or a 'dedup_key'")
    details = body.get("custom_details")
    detail_labels = parse.labels(details) if isinstance(details, Mapping) else {}
    source = parse.text(body.get("source"), 512)
    component = parse.text(body.get("component"), 256)
    event_class = parse.text(body.get("class"), 256)
    group = parse.text(body.get("group"), 256)
    if dedup_key:
        fingerprint = native_fingerprint(NAME, dedup_key)
    else:
        identity = {"component": component, "class": event_class}
        identity = {key: value for key, value in identity.items() if value}
        fingerprint = computed_fingerprint(delivery.tenant_id, NAME, summary, source, identity)
    own = {
        "pagerduty_action": action,
        "component": component,
        "group": group,
        "class": event_class,
        "client": parse.text(event.get("client"), 256),
    }
    labels = {key: value for key, value in detail_labels.items() if key != "routing_key"}
    labels |= {key: value for key, value in own.items() if value}
    resolved = action == "resolve"
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=dedup_key or fingerprint,
        fingerprint=fingerprint,
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        severity=_SEVERITIES.get(parse.text(body.get("severity"), 64).lower(), Severity.MEDIUM),
        title=title,
        description=parse.text(details) if isinstance(details, str) else "",
        service=parse.first_text(
            detail_labels.get("service"), detail_labels.get("service_name"), group, component
        )[:256],
        environment=parse.first_text(detail_labels.get("environment"), detail_labels.get("env"))[
            :256
        ],
        resource=source,
        labels=labels,
        links=_links(event),
        started_at=parse.timestamp(body.get("timestamp")) or delivery.received_at,
        received_at=delivery.received_at,
        ended_at=delivery.received_at if resolved else None,
    )


def _change(event: Mapping[str, Any], body: Mapping[str, Any], delivery: Delivery) -> DeployEvent:
    details = body.get("custom_details")
    detail_labels = parse.labels(details) if isinstance(details, Mapping) else {}
    service = parse.first_text(
        detail_labels.get("service"), detail_labels.get("service_name"), body.get("source")
    )[:256]
    if not service:
        raise PayloadError("a change event needs 'payload.source' or 'custom_details.service'")
    summary = parse.text(body.get("summary"), 1024)
    started = parse.timestamp(body.get("timestamp")) or delivery.received_at
    # Change events have no id of their own; one change is its service, time and summary.
    identity = "\x1f".join((service, started.isoformat(), summary)).encode("utf-8", "replace")
    links = _links(event)
    return DeployEvent(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref="change:" + hashlib.sha256(identity).hexdigest()[:32],
        service=service,
        status=DeployStatus.SUCCESS,
        started_at=started,
        received_at=delivery.received_at,
        environment=parse.first_text(detail_labels.get("environment"), detail_labels.get("env"))[
            :256
        ],
        version=parse.first_text(detail_labels.get("version"), detail_labels.get("release"))[:256],
        commit=parse.first_text(detail_labels.get("commit"), detail_labels.get("sha"))[:256],
        author=parse.first_text(detail_labels.get("author"), detail_labels.get("user"))[:256],
        title=summary,
        url=next(iter(links.values()), ""),
        finished_at=started,
    )


def _links(event: Mapping[str, Any]) -> dict[str, str]:
    """``links[]`` keyed by their text (``link``, ``link 2``… without), plus ``client_url``."""
    found: dict[str, str] = {}
    raw_links = event.get("links")
    for item in raw_links[:20] if isinstance(raw_links, list) else []:
        if not isinstance(item, Mapping) or not (href := _url(item.get("href"))):
            continue
        base = parse.text(item.get("text"), 128) or "link"
        key, number = base, 1
        while key in found:
            number += 1
            key = f"{base} {number}"
        found[key] = href
    if client_url := _url(event.get("client_url")):
        found["source"] = client_url
    return found


def _url(value: Any) -> str:
    """Only web links: a ``javascript:`` URL must never reach the UI."""
    url = parse.text(value, 4096)
    return url if url.lower().startswith(("https://", "http://")) else ""


def _redact(record: Normalised, secret: str) -> Normalised:
    """The record with every occurrence of the routing key replaced."""
    if not secret:
        return record

    def clean(value: str) -> str:
        return value.replace(secret, _REDACTED)

    changes: dict[str, Any] = {}
    for field in dataclasses.fields(record):
        value = getattr(record, field.name)
        if field.name in _KEEP_FIELDS:
            continue
        if type(value) is str:  # not the status/severity enums, which are str too
            changes[field.name] = clean(value)
        elif isinstance(value, dict):
            changes[field.name] = {clean(key): clean(item) for key, item in value.items()}
    return dataclasses.replace(record, **changes)
