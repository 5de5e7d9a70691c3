"""PagerDuty v3 webhook subscriptions: incidents as PagerDuty manages them.

Body: ``{"event": {"id", "event_type", "resource_type", "occurred_at", "agent",
"client", "data"}}``. Events whose ``data`` is the incident itself (``data.type ==
"incident"``: triggered, acknowledged, unacknowledged, escalated, reassigned, delegated,
priority_updated, reopened, resolved, …) become one alert per delivery, so every state
change of an incident updates the same record. Other real event types carry no alert
state and return ``[]``: ``incident.annotated``, ``incident.responder.*``,
``incident.status_update_published``, ``incident.workflow.*`` and any other ``incident.*``
whose data is not the incident, every ``service.*`` event, and the ``pagey.ping`` test
event. Anything else (including legacy v2 ``messages`` bodies) is a PayloadError.

Status: resolved when the event is ``incident.resolved`` or the incident's ``status`` is
``resolved``; firing otherwise (an acknowledged or reopened incident is still firing).

Severity: the incident priority's name when it is one of ``_PRIORITIES`` (P1 critical,
P2 high, P3 medium, P4 low, P5 info; SEV1…SEV5 likewise), else the urgency (high → high,
low → low), else medium. Priority wins because a responder sets it deliberately.

Fingerprint: the incident's ``incident_key`` (the Events API dedup key) when set, else
the incident id — both stay the same for the incident's whole life. ``started_at`` is
the incident's ``created_at`` (so every update of one incident starts at the same
time), falling back to ``event.occurred_at``; a resolve ends at ``occurred_at``. A
resolve and an ``incident.reopened`` start at their ``occurred_at`` (the creation time
stays in label ``pagerduty_created_at``): a reopened incident is a new occurrence from
the moment it was reopened, and its resolve ends that occurrence, not the first one.
``service`` is ``data.service.summary`` (PagerDuty's service name).

Auth: ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>…]``, HMAC-SHA256 of the raw body;
several entries are sent while a secret is being rotated and any one may match. There
is no signed timestamp: redeliveries are recognised by ``X-Webhook-Id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dd0c_alert.domain.fingerprint import native_fingerprint
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Normalised, Severity

from . import parse
from .auth import any_signature_matches, hmac_sha256_hex
from .base import AuthError, Delivery, PayloadError

NAME = "pagerduty"
DELIVERY_ID_HEADERS: tuple[str, ...] = ("x-webhook-id",)

_PRIORITIES: dict[str, Severity] = {
    **dict.fromkeys(("p1", "sev1"), Severity.CRITICAL),
    **dict.fromkeys(("p2", "sev2"), Severity.HIGH),
    **dict.fromkeys(("p3", "sev3"), Severity.MEDIUM),
    **dict.fromkeys(("p4", "sev4"), Severity.LOW),
    **dict.fromkeys(("p5", "sev5"), Severity.INFO),
}
_URGENCIES: dict[str, Severity] = {"high": Severity.HIGH, "low": Severity.LOW}

# Event types documented with the incident itself as ``data``: treated as incident
# updates even if a sender leaves out ``data.type``.
_INCIDENT_EVENTS = frozenset(
    f"incident.{name}"
    for name in (
        "triggered",
        "acknowledged",
        "unacknowledged",
        "escalated",
        "reassigned",
        "delegated",
        "priority_updated",
        "reopened",
        "resolved",
    )
)


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    header = headers.get("x-pagerduty-signature", "").strip()
    if not header:
        raise AuthError("missing_signature", "X-PagerDuty-Signature is required")
    expected = "v1=" + hmac_sha256_hex(secret, body)
    if not any_signature_matches(expected, header.split(",")):
        raise AuthError("signature_mismatch", "X-PagerDuty-Signature does not match the body")


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    body = parse.mapping(payload, "body")
    if "event" not in body:
        if "messages" in body:
            raise PayloadError(
                "this is a PagerDuty v2 webhook ('messages'); create a v3 webhook subscription"
            )
        raise PayloadError("not a PagerDuty v3 webhook: no 'event' object")
    event = parse.mapping(body["event"], "'event'")
    event_type = parse.text(event.get("event_type"), 256)
    if not event_type:
        raise PayloadError("'event.event_type' is missing")
    if event_type == "pagey.ping" or event_type.startswith("service."):
        return []
    if not event_type.startswith("incident."):
        raise PayloadError(f"unsupported PagerDuty event type {event_type!r}")
    data = event.get("data")
    data = data if isinstance(data, Mapping) else {}
    is_incident = parse.text(data.get("type")) == "incident"
    if event_type not in _INCIDENT_EVENTS and not is_incident:
        return []  # notes, responders, status updates, workflows: not the incident's state
    return [_alert(event, event_type, data, delivery)]


def _alert(
    event: Mapping[str, Any], event_type: str, incident: Mapping[str, Any], delivery: Delivery
) -> CanonicalAlert:
    incident_id = parse.text(incident.get("id"), 256)
    incident_key = parse.text(incident.get("incident_key"), 1024)
    if not incident_id and not incident_key:
        raise PayloadError(f"{event_type} carries an incident with neither 'id' nor 'incident_key'")
    number = parse.text(incident.get("number"), 64)
    title = parse.first_text(
        incident.get("title"),
        incident.get("summary"),
        f"PagerDuty incident #{number}" if number else None,
        incident_id or incident_key,
    )[:1024]
    incident_status = parse.text(incident.get("status"), 64).lower()
    resolved = event_type == "incident.resolved" or incident_status == "resolved"
    occurred = parse.timestamp(event.get("occurred_at"))
    created = parse.timestamp(incident.get("created_at"))
    started = _start(event_type, resolved, created, occurred) or delivery.received_at
    service = _ref(incident.get("service"))
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=incident_id or incident_key,
        fingerprint=native_fingerprint(NAME, incident_key or incident_id),
        status=AlertStatus.RESOLVED if resolved else AlertStatus.FIRING,
        severity=_severity(incident),
        title=title,
        service=parse.text(service.get("summary"), 256),
        labels=_labels(event, event_type, incident, service),
        links=_links(event, incident),
        started_at=started,
        received_at=delivery.received_at,
        ended_at=(occurred or delivery.received_at) if resolved else None,
    )


def _start(
    event_type: str, resolved: bool, created: datetime | None, occurred: datetime | None
) -> datetime | None:
    """The incident's creation for the updates of an open incident, so all of them fold
    into one occurrence; the event's own time for a reopen and a resolve.

    A reopened incident is a new occurrence, which begins when it was reopened: with
    the creation time it would lie before the first resolve and fold into that ended
    occurrence as a late copy, leaving the live incident resolved. A resolve carries
    its own time as its start (as a Datadog recovery does) so that the resolve of a
    reopened incident ends the reopened occurrence instead of repeating the first end.
    """
    if resolved or event_type == "incident.reopened":
        return occurred or created
    return created or occurred


def _severity(incident: Mapping[str, Any]) -> Severity:
    priority = parse.text(_ref(incident.get("priority")).get("summary"), 64)
    key = priority.lower().replace("-", "").replace(" ", "")
    if key in _PRIORITIES:
        return _PRIORITIES[key]
    return _URGENCIES.get(parse.text(incident.get("urgency"), 64).lower(), Severity.MEDIUM)


def _labels(
    event: Mapping[str, Any],
    event_type: str,
    incident: Mapping[str, Any],
    service: Mapping[str, Any],
) -> dict[str, str]:
    found = {
        "pagerduty_event_type": event_type,
        "pagerduty_incident_id": parse.text(incident.get("id"), 256),
        "pagerduty_incident_number": parse.text(incident.get("number"), 64),
        "pagerduty_status": parse.text(incident.get("status"), 64),
        "pagerduty_created_at": parse.text(incident.get("created_at"), 64),
        "incident_key": parse.text(incident.get("incident_key"), 1024),
        "urgency": parse.text(incident.get("urgency"), 64),
        "priority": parse.text(_ref(incident.get("priority")).get("summary"), 256),
        "service_id": parse.text(service.get("id"), 256),
        "escalation_policy": parse.text(_ref(incident.get("escalation_policy")).get("summary")),
        "teams": _summaries(incident.get("teams")),
        "assignees": _summaries(incident.get("assignees")),
        "client": parse.text(_ref(event.get("client")).get("name"), 256),
        "resolve_reason": parse.text(_ref(incident.get("resolve_reason")).get("type"), 256),
    }
    return {key: value for key, value in found.items() if value}


def _links(event: Mapping[str, Any], incident: Mapping[str, Any]) -> dict[str, str]:
    found = {
        "source": _url(incident.get("html_url")),
        "client": _url(_ref(event.get("client")).get("url")),
        "conference": _url(_ref(incident.get("conference_bridge")).get("conference_url")),
    }
    return {key: value for key, value in found.items() if value}


def _ref(value: Any) -> Mapping[str, Any]:
    """A PagerDuty reference object, or an empty one when absent or malformed."""
    return value if isinstance(value, Mapping) else {}


def _summaries(value: Any) -> str:
    if not isinstance(value, list):
        return ""
    names = (parse.text(_ref(item).get("summary"), 256) for item in value[:50])
    return ", ".join(name for name in names if name)[:1024]


def _url(value: Any) -> str:
    """Only web links: a ``javascript:`` URL must never reach the UI."""
    url = parse.text(value, 4096)
    return url if url.lower().startswith(("https://", "http://")) else ""
