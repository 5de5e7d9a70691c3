"""OpsGenie alert activity sent by its outgoing Webhook integration.

Body: ``{"action": "Create" | "Acknowledge" | "AddNote" | "Close" | …, "alert": {alertId,
alias, tinyId, message, description, tags, details, entity, priority, source, team,
createdAt (ms), updatedAt (ns), username, …}, "source": {...}, "integrationName", …}``.
OpsGenie sends one action per request, and only Create (and custom actions) carry the
description and details; later actions repeat the identity fields.

Status: Close and Delete → resolved; every other action (Create, Acknowledge,
UnAcknowledge, AddNote, Escalate, AssignOwnership, TakeOwnership, AddTags, Snooze,
CustomAction, …) is an update of a still-open alert → firing, unless the alert object
itself says ``status: closed``. The action is kept in label ``opsgenie_action``.

Severity: priority P1 critical, P2 high, P3 medium, P4 low, P5 info; missing or
unknown → medium.

Fingerprint: the alert's ``alias`` (OpsGenie's own dedup key), else its ``alertId``, so
every action on one alert folds into one record. ``source_ref`` is the ``alertId``.

Service: ``details.service``, else a ``service:`` / ``service=`` tag. Environment:
``details.environment`` / ``details.env``, then the tags. Resource: ``entity``, else
``details`` host / hostname / pod / instance. ``started_at`` is ``createdAt``; a resolved
alert ends at ``updatedAt`` (the time of the Close).

Auth: OpsGenie cannot sign; the integration's custom headers carry a static token
(``Authorization: Bearer …``, ``X-DD0C-Token`` or basic auth).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dd0c_alert.domain.fingerprint import native_fingerprint
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Normalised, Severity
from dd0c_alert.domain.severity import parse_severity

from . import parse
from .auth import verify_token
from .base import Delivery, PayloadError

NAME = "opsgenie"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

PRIORITIES: dict[str, Severity] = {
    "p1": Severity.CRITICAL,
    "p2": Severity.HIGH,
    "p3": Severity.MEDIUM,
    "p4": Severity.LOW,
    "p5": Severity.INFO,
}

_RESOLVING_ACTIONS = frozenset(("close", "delete"))


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    verify_token(headers, secret)


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    body = parse.mapping(payload, "OpsGenie webhook body")
    action = parse.text(body.get("action"), 128)
    alert = body.get("alert")
    if not action or not isinstance(alert, Mapping):
        raise PayloadError("not an OpsGenie webhook: expected 'action' and an 'alert' object")
    alert_id = parse.text(alert.get("alertId"), 256)
    alias = parse.text(alert.get("alias"), 1024)
    if not alert_id and not alias:
        raise PayloadError("OpsGenie 'alert' has neither 'alertId' nor 'alias'")
    return [_alert(body, alert, delivery, action=action, alert_id=alert_id, alias=alias)]


def _epoch(value: Any) -> datetime | None:
    """OpsGenie sends createdAt in ms but updatedAt in ns; parse.timestamp stops at µs."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1e17:
        try:
            return datetime.fromtimestamp(value / 1e9, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return parse.timestamp(value)


def _alert(
    body: Mapping[str, Any],
    alert: Mapping[str, Any],
    delivery: Delivery,
    *,
    action: str,
    alert_id: str,
    alias: str,
) -> CanonicalAlert:
    details = parse.labels(alert.get("details"))
    tags = parse.labels(alert.get("tags"))

    def conventional(keys: tuple[str, ...]) -> str:
        for source in (details, tags):
            for key in keys:
                if source.get(key):
                    return source[key][:512]
        return ""

    closed = parse.text(alert.get("status")).lower() == "closed"
    status = (
        AlertStatus.RESOLVED
        if action.lower() in _RESOLVING_ACTIONS or closed
        else AlertStatus.FIRING
    )
    priority = parse.text(alert.get("priority"), 16)
    tiny_id = parse.text(alert.get("tinyId"), 64)
    updated = _epoch(alert.get("updatedAt"))
    started = _epoch(alert.get("createdAt")) or updated or delivery.received_at
    extras = {
        "opsgenie_action": action,
        "opsgenie_tiny_id": tiny_id,
        "opsgenie_priority": priority,
        "opsgenie_team": parse.text(alert.get("team"), 256),
        "opsgenie_source": parse.text(alert.get("source"), 1024),
        "opsgenie_user": parse.text(alert.get("username"), 256),
        "opsgenie_integration": parse.text(body.get("integrationName"), 256),
    }
    source = extras["opsgenie_source"]
    links = {
        "source": source if source.startswith(("https://", "http://")) else "",
        "runbook": conventional(("runbook_url", "runbook")),
    }
    title = parse.text(alert.get("message"), 1024) or f"OpsGenie alert #{tiny_id or alias}"
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=alert_id or alias,
        fingerprint=native_fingerprint(NAME, alias or alert_id),
        status=status,
        severity=parse_severity(priority, PRIORITIES),
        title=title,
        description=parse.text(alert.get("description")),
        service=conventional(("service",)),
        environment=conventional(("environment", "env")),
        resource=parse.text(alert.get("entity"), 512)
        or conventional(("host", "hostname", "pod", "instance")),
        labels={**tags, **details, **{k: v for k, v in extras.items() if v}},
        links={k: v for k, v in links.items() if v.startswith(("https://", "http://"))},
        started_at=started,
        received_at=delivery.received_at,
        ended_at=(updated or delivery.received_at) if status is AlertStatus.RESOLVED else None,
    )
