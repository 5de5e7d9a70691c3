"""Datadog monitor notifications sent by the Webhooks integration.

The body is whatever payload template the user configured, so fields are read by
the names of Datadog's template variables in their usual spellings: ``id`` ($ID),
``title`` ($EVENT_TITLE), ``date`` / ``last_updated`` (ms), ``body`` ($EVENT_MSG),
``text_only_msg``, ``org``, ``event_type``, ``alert_id`` / ``monitor_id`` ($ALERT_ID),
``alert_title``, ``alert_transition``, ``alert_type``, ``alert_priority`` (or
``priority`` / ``severity`` holding P1..P5), ``alert_scope`` / ``scopes``,
``aggreg_key`` / ``aggregation_key`` / ``aggregate``, ``hostname``, ``tags`` (the
comma-separated $TAGS or a list), ``link`` / ``url``, ``snapshot``, ``alert_metric``,
``alert_query``. Fields nested under ``alert``, ``event`` or ``monitor`` objects are read
too (Datadog's synthetics template nests them). The body may be one object or a JSON
array of them (one alert each).

The default template carries only ``id``, ``title``, ``date``, ``org`` and ``body``, so
what it lacks is recovered from what Datadog writes there: the title's leading
``[P1]`` and ``[Triggered on {scope}]`` brackets, and the monitor id and group in the
body's "Monitor Status" link.

Status: transition (field, else title bracket) Recovered / success / OK → resolved;
Triggered, Re-Triggered, Warn, No Data, Renotify … → firing; else ``alert_type``
success → resolved; else firing.

Severity: the monitor priority P1 critical, P2 high, P3 medium, P4 low, P5 info. With
no priority it is derived from ``alert_type``, then the transition: error / Triggered
→ high, warning / Warn / No Data → medium, info → info. A recovery without priority
says nothing of the level it recovers from, so it is medium (unknown).

Fingerprint: the aggregation key when the template sends one; else the monitor id
plus its scope (``"<monitor_id>:<scope>"``, scope tags sorted); both are Datadog's
own identity of a monitor group, shared by its Triggered and Recovered notifications.
Without either, a hash of the alert name (title without brackets) and its scope.
Per-notification values ($ID, dates) are never part of it. ``source_ref`` is that same
key (else $ID).

Test notifications: the monitor's "Test Notifications" button sends each state it tests
with ``[TEST]`` in the title and the real monitor's id and group in the body, so read
like any other they would update, and a tested "Recovered" would resolve, the real alert
of that group. They are alerts of their own instead: key ``test:<key>``, title kept with
its ``[TEST]`` prefix, label ``datadog_test`` = ``true``; the user sees the webhook work.

Times: ``started_at`` is the notification's own ``date`` (ms), which for a recovery is
also its ``ended_at``.

Service: ``service`` field, else the ``service:`` scope tag, else the ``service:`` tag.
Environment: ``environment`` / ``env`` field, else ``env:`` / ``environment:`` from the
scope, then the tags. Resource: ``hostname`` / ``host`` field, else ``host:`` from the
scope, then the tags.

Auth: Datadog cannot sign; the webhook's custom headers carry a static token
(``Authorization: Bearer …``, ``X-DD0C-Token`` or basic auth).
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from dd0c_alert.domain.fingerprint import computed_fingerprint, native_fingerprint
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Normalised, Severity

from . import parse
from .auth import verify_token
from .base import Delivery, PayloadError

NAME = "datadog"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

PRIORITIES: dict[str, Severity] = {
    "p1": Severity.CRITICAL,
    "p2": Severity.HIGH,
    "p3": Severity.MEDIUM,
    "p4": Severity.LOW,
    "p5": Severity.INFO,
}

#: Used only when no P1..P5 priority is sent; alert_type is looked up first.
DERIVED_SEVERITY: dict[str, Severity] = {
    "error": Severity.HIGH,
    "warning": Severity.MEDIUM,
    "info": Severity.INFO,
    "triggered": Severity.HIGH,
    "re-triggered": Severity.HIGH,
    "warn": Severity.MEDIUM,
    "re-warn": Severity.MEDIUM,
    "no data": Severity.MEDIUM,
    "re-no data": Severity.MEDIUM,
}

_TRANSITIONS: dict[str, AlertStatus] = {
    **dict.fromkeys(
        (
            "triggered",
            "re-triggered",
            "warn",
            "re-warn",
            "no data",
            "re-no data",
            "renotify",
            "alert",
            "firing",
        ),
        AlertStatus.FIRING,
    ),
    **dict.fromkeys(("recovered", "resolved", "ok", "success"), AlertStatus.RESOLVED),
}

#: The words Datadog itself writes in a notification title's bracket.
_TITLE_TRANSITIONS = frozenset(
    (
        "triggered",
        "re-triggered",
        "recovered",
        "warn",
        "re-warn",
        "no data",
        "re-no data",
        "renotify",
    )
)
_ALERT_TYPES = {"success": AlertStatus.RESOLVED, "error": AlertStatus.FIRING}

_NESTED = ("alert", "event", "monitor")
_TITLE_BRACKET = re.compile(r"\s*\[([^\[\]{}]{0,40}?)(?: on \{([^{}]*)\})?\]\s*")
_PRIORITY = re.compile(r"p[1-5]", re.IGNORECASE)
_MONITOR_STATUS = re.compile(r"\[Monitor Status\]\((https?://[^)\s]+/monitors/(\d+)[^)\s]*)\)")
_MONITOR_LINK = re.compile(r"/monitors/(\d+)")
_GROUP = re.compile(r"[?&]group=([^&#\s]+)")
_UNSET = {"null", "none", "undefined", "n/a"}


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    verify_token(headers, secret)


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    objects = parse.items(payload, "Datadog webhook body")
    if not objects:
        raise PayloadError("Datadog webhook body is an empty array")
    return parse.each(
        objects,
        lambda _, obj: _one(parse.mapping(obj, "the item"), delivery),
        delivery,
        "item {}".format,
    )


def _flatten(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level fields, plus those nested under alert / event / monitor objects."""
    flat: dict[str, Any] = {k: v for k, v in obj.items() if isinstance(k, str)}
    for parent in _NESTED:
        nested = obj.get(parent)
        if not isinstance(nested, Mapping):
            continue
        for key, value in nested.items():
            if not isinstance(key, str):
                continue
            prefixed = key if key.startswith(parent + "_") else f"{parent}_{key}"
            flat.setdefault(prefixed, value)
            flat.setdefault(key, value)
    return flat


def _field(flat: Mapping[str, Any], *names: str, limit: int = 1024) -> str:
    """The first set value among ``names``; unexpanded ``$VARS`` and "null" count as unset."""
    for name in names:
        value = parse.text(flat.get(name), limit)
        if value and value.lower() not in _UNSET and not _is_placeholder(value):
            return value
    return ""


def _is_placeholder(value: str) -> bool:
    return value.startswith("$") and value[1:].replace("_", "").isalnum() and value.isupper()


def _tags(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        value = value.split(",")
    return parse.labels(value)


def _scope_key(scope: str) -> str:
    """One spelling for a scope however it arrived (title, link, $ALERT_SCOPE)."""
    parts = {part.strip() for part in scope.split(",")}
    return ",".join(sorted(part for part in parts if part and part != "*"))


@dataclass(frozen=True, slots=True)
class _Title:
    """What Datadog writes in a notification title's leading brackets."""

    name: str
    priority: str = ""
    transition: str = ""
    scope: str = ""
    #: ``[TEST]``: sent by the monitor's "Test Notifications" button, not by its state.
    test: bool = False


def _parse_title(raw: str) -> _Title:
    """The parts of "[TEST] [P1] [Triggered on {scope}] name" (each bracket optional)."""
    priority = transition = scope = ""
    test = False
    rest = raw
    while match := _TITLE_BRACKET.match(rest):
        word = match.group(1).strip()
        if _PRIORITY.fullmatch(word) and not priority:
            priority = word.upper()
        elif word.lower() in _TITLE_TRANSITIONS and not transition:
            transition, scope = word, match.group(2) or ""
        elif word.lower() == "test" and not test:
            test = True
        elif word:
            break  # a bracket that is part of the monitor's name, e.g. "[Synthetics]"
        rest = rest[match.end() :]
    return _Title(rest.strip(), priority, transition, scope, test)


def _monitor_link(message: str) -> tuple[str, str, str]:
    """(url, monitor id, group) of the footer link Datadog appends to every message."""
    match = _MONITOR_STATUS.search(message)
    if match:
        url, monitor_id = html.unescape(match.group(1)), match.group(2)
    else:
        ids = _MONITOR_LINK.findall(message)
        if not ids:
            return "", "", ""
        url, monitor_id = "", ids[-1]
    group = _GROUP.search(url)
    return url, monitor_id, unquote(group.group(1)) if group else ""


def _message(flat: Mapping[str, Any]) -> str:
    body = _field(flat, "text_only_msg", "body", "event_msg", "message", limit=8192)
    return body.removeprefix("%%%").removesuffix("%%%").strip()


def _one(obj: Mapping[str, Any], delivery: Delivery) -> CanonicalAlert:
    if isinstance(obj.get("alerts"), list) and "receiver" in obj:
        raise PayloadError("this is an Alertmanager / Grafana payload, not a Datadog webhook")
    if "evalMatches" in obj or "ruleId" in obj:
        raise PayloadError("this is a legacy Grafana payload, not a Datadog webhook")
    flat = _flatten(obj)
    raw_body = _field(flat, "body", "event_msg", "message", "text_only_msg", limit=1 << 20)
    parsed = _parse_title(_field(flat, "title", "event_title"))
    name, title_priority, title_transition, title_scope = (
        parsed.name,
        parsed.priority,
        parsed.transition,
        parsed.scope,
    )
    monitor_url, link_monitor, link_group = _monitor_link(raw_body)
    monitor_id = _field(flat, "alert_id", "monitor_id", "alert_monitor_id") or link_monitor
    aggregation_key = _field(
        flat, "aggreg_key", "aggregation_key", "aggregate", "aggreg", "event_aggreg_key"
    )
    alert_title = _field(flat, "alert_title", "alert_name")
    if not (name or alert_title or monitor_id or aggregation_key):
        raise PayloadError(
            "not a Datadog webhook: no 'title' ($EVENT_TITLE), 'alert_title', "
            "'alert_id' or 'aggreg_key'"
        )
    scope = _scope_key(_field(flat, "alert_scope", "scopes", "scope") or link_group or title_scope)
    scope_labels, tag_labels = _tags(scope), _tags(flat.get("tags"))

    def conventional(fields: tuple[str, ...], keys: tuple[str, ...]) -> str:
        found = _field(flat, *fields, limit=512)
        for source in (scope_labels, tag_labels):
            found = found or next((source[k] for k in keys if source.get(k)), "")
        return found

    service = conventional(("service",), ("service",))
    title = (f"{name} on {title_scope}" if title_scope else name) or alert_title
    title = title or f"Datadog monitor {monitor_id or aggregation_key}"
    if parsed.test:
        title = f"[TEST] {title}"

    key = aggregation_key or (f"{monitor_id}:{scope}" if monitor_id and scope else monitor_id)
    if parsed.test and key:
        key = f"test:{key}"  # a test of a monitor is not its real state: never the same alert
    if key:
        fingerprint = native_fingerprint(NAME, key)
    else:
        identity = {"scope": scope} if scope else {}
        if parsed.test:
            identity["datadog_test"] = "true"
        fingerprint = computed_fingerprint(
            delivery.tenant_id, NAME, name or title, service, identity
        )

    transition = _transition(flat) or title_transition
    alert_type = _field(flat, "alert_type").lower()
    status = _TRANSITIONS.get(transition.lower()) or _ALERT_TYPES.get(
        alert_type, AlertStatus.FIRING
    )
    priority = _priority(flat) or title_priority
    severity = (
        PRIORITIES.get(priority.lower())
        or DERIVED_SEVERITY.get(alert_type)
        or DERIVED_SEVERITY.get(transition.lower(), Severity.MEDIUM)
    )
    started = (
        parse.timestamp(_field(flat, "date", "date_posix", "last_updated", "timestamp"))
        or delivery.received_at
    )
    org = flat.get("org")
    extras = {
        "datadog_monitor_id": monitor_id,
        "datadog_scope": scope,
        "datadog_aggregation_key": aggregation_key,
        "datadog_event_type": _field(flat, "event_type"),
        "datadog_transition": transition,
        "datadog_alert_type": alert_type,
        "datadog_priority": priority,
        "datadog_metric": _field(flat, "alert_metric"),
        "datadog_query": _field(flat, "alert_query"),
        "datadog_test": "true" if parsed.test else "",
        "datadog_org": parse.text(org.get("name"), 256)
        if isinstance(org, Mapping)
        else parse.text(org, 256),
    }
    links = {
        "source": _field(flat, "link", "url", "event_url", limit=2048),
        "monitor": monitor_url,
        "snapshot": _field(flat, "snapshot", limit=2048),
    }
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=NAME,
        source_ref=key or _field(flat, "id", "event_id") or fingerprint,
        fingerprint=fingerprint,
        status=status,
        severity=severity,
        title=title[:1024],
        description=_message(flat),
        service=service,
        environment=conventional(("environment", "env"), ("env", "environment")),
        resource=conventional(("hostname", "host", "resource"), ("host", "hostname")),
        labels={**tag_labels, **scope_labels, **{k: v for k, v in extras.items() if v}},
        links={k: v for k, v in links.items() if v.startswith(("https://", "http://"))},
        started_at=started,
        received_at=delivery.received_at,
        ended_at=started if status is AlertStatus.RESOLVED else None,
    )


def _transition(flat: Mapping[str, Any]) -> str:
    """$ALERT_TRANSITION under whichever name the template gave it."""
    for name in ("alert_transition", "transition", "status", "state", "alert_status"):
        value = _field(flat, name)
        if value.lower() in _TRANSITIONS:
            return value
    return ""


def _priority(flat: Mapping[str, Any]) -> str:
    """$ALERT_PRIORITY (P1..P5); $PRIORITY's "normal" / "low" is not a monitor priority."""
    for name in ("alert_priority", "priority", "severity"):
        value = _field(flat, name)
        if _PRIORITY.fullmatch(value):
            return value.upper()
    return ""
