"""Prometheus Alertmanager (and VictoriaMetrics vmalertmanager) webhook receiver.

Body: the webhook notification (``version`` "4"): one alert group with ``status``,
``receiver``, ``groupLabels``, ``commonLabels``, ``externalURL``, ``truncatedAlerts`` and
``alerts[]``. Each alert carries its own ``status``, so one notification of a partially
resolved group yields firing and resolved records side by side. vmalertmanager sends
the same shape. Grafana's unified alerting sends a superset; ``grafana`` reuses
``read_group`` and ``to_alert`` from here.

Truncation: when the receiver's ``max_alerts`` cut the group, ``truncatedAlerts`` counts
the alerts left out. Those cannot be recovered from the body, so the included ones are
normalised and each carries the label ``dd0c_truncated_alerts`` = that count, which
makes the loss visible on every alert of the group. The label is added after the
fingerprint is taken: a count that changes between notifications never splits identity.

Severity: the ``severity`` label (else ``priority``) through ``SEVERITIES``, the shared
common spellings plus two Prometheus-mixin conventions: critical / crit / page / fatal /
emergency / p1 / urgent → critical; error / high / major / p2 → high; warning / warn /
medium / p3 → medium; low / minor / p4 / ticket → low; info / none / notice / p5 → info;
anything else (or no label) → medium.

Service: the first non-empty of the labels ``service``, ``service_name``,
``app_kubernetes_io_name``, ``app``, ``application``, ``k8s_app``, ``container``,
``container_name``, ``job``, ``namespace``. ``container`` comes before ``job`` because
kube-state-metrics alerts carry ``job="kube-state-metrics"`` while naming the affected
container; ``namespace`` is the last resort for namespace-wide alerts.
Environment: ``env``, ``environment``, ``deployment_environment``, ``stage``, ``cluster``.
Resource: ``pod``, ``pod_name``, ``instance``, ``host``, ``hostname``, ``node``,
``nodename`` (``pod`` first: on Kubernetes alerts ``instance`` is often the exporter).

Fingerprint: the alert's own ``fingerprint`` (Alertmanager's hash of its full label
set, identical in the firing and the resolve notification). Without one, a hash of the
whole label set, because in Alertmanager the label set *is* the alert's identity.

Links (http/https only; relative ones resolved against ``externalURL``): ``source`` =
``generatorURL``, ``runbook`` = annotation ``runbook_url`` / ``runbook``, ``dashboard`` =
annotation ``dashboard_url`` / ``dashboard`` / ``grafana_url`` / ``grafana``,
``silence`` = ``silenceURL``.

Auth: Alertmanager never signs; its ``http_config`` sends a bearer token or basic
auth (``X-DD0C-Token`` also accepted).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from dd0c_alert.domain.fingerprint import computed_fingerprint, native_fingerprint
from dd0c_alert.domain.models import AlertStatus, CanonicalAlert, Normalised, Severity
from dd0c_alert.domain.severity import COMMON_SPELLINGS, parse_severity
from dd0c_alert.domain.urls import web_url

from . import parse
from .auth import verify_token
from .base import Delivery, PayloadError

NAME = "alertmanager"
DELIVERY_ID_HEADERS: tuple[str, ...] = ()

TRUNCATED_LABEL = "dd0c_truncated_alerts"

SEVERITIES: dict[str, Severity] = {
    **COMMON_SPELLINGS,
    "urgent": Severity.CRITICAL,
    "ticket": Severity.LOW,  # the "page vs ticket" convention of some mixins
}

SERVICE_LABELS = (
    "service",
    "service_name",
    "app_kubernetes_io_name",
    "app",
    "application",
    "k8s_app",
    "container",
    "container_name",
    "job",
    "namespace",
)
ENVIRONMENT_LABELS = ("env", "environment", "deployment_environment", "stage", "cluster")
RESOURCE_LABELS = ("pod", "pod_name", "instance", "host", "hostname", "node", "nodename")

_STATUSES = {"firing": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
_MAX_URL = 8192


@dataclass(frozen=True, slots=True)
class Group:
    """What a notification says about all of its alerts."""

    status: str
    external_url: str
    truncated: int


def verify(headers: Mapping[str, str], body: bytes, secret: str, now: float) -> None:
    verify_token(headers, secret)


def normalise(payload: Any, delivery: Delivery) -> list[Normalised]:
    group, alerts = read_group(payload, "an Alertmanager webhook")

    def read(index: int, obj: Any) -> Normalised:
        return to_alert(parse.mapping(obj, "the alert"), group, delivery)

    return parse.each(alerts, read, delivery, alert_name)


def alert_name(index: int) -> str:
    """How a dead letter names an alert of the group it skipped."""
    return f"alerts[{index}]"


def read_group(payload: Any, what: str) -> tuple[Group, list[Any]]:
    """The group-level fields and the alerts, or PayloadError if not ``what``.

    The alerts are not checked here: each is read on its own (``parse.each``), so one
    that is not even an object does not take the others down."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("alerts"), list):
        raise PayloadError(f"not {what}: expected a JSON object with an 'alerts' array")
    alerts: list[Any] = payload["alerts"]
    if not alerts:
        raise PayloadError(f"{what} with an empty 'alerts' array")
    group = Group(
        status=parse.text(payload.get("status")).lower(),
        external_url=link(payload.get("externalURL")),
        truncated=_count(payload.get("truncatedAlerts")),
    )
    return group, alerts


def to_alert(
    obj: Mapping[str, Any],
    group: Group,
    delivery: Delivery,
    source: str = NAME,
    severities: dict[str, Severity] = SEVERITIES,
) -> CanonicalAlert:
    """One alert of a group, as Alertmanager and Grafana both shape it."""
    labels = parse.labels(obj.get("labels"))
    notes = obj.get("annotations")
    notes = notes if isinstance(notes, Mapping) else {}
    own_key = parse.text(obj.get("fingerprint"), 1024)
    if not labels and not own_key:
        raise PayloadError("an alert needs 'labels' or a 'fingerprint'")
    status_text = parse.text(obj.get("status")).lower() or group.status or "firing"
    status = _STATUSES.get(status_text)
    if status is None:
        raise PayloadError(f"alert 'status' must be 'firing' or 'resolved', got {status_text!r}")
    name = labels.get("alertname", "")
    service = first_label(labels, SERVICE_LABELS)
    if own_key:
        fingerprint = native_fingerprint(source, own_key)
    else:
        fingerprint = computed_fingerprint(delivery.tenant_id, source, name, service, labels)
    severity = parse_severity(first_label(labels, ("severity", "priority")), severities)
    if group.truncated:
        labels[TRUNCATED_LABEL] = str(group.truncated)
    ended = None
    if status is AlertStatus.RESOLVED:
        ended = parse.timestamp(obj.get("endsAt")) or delivery.received_at
    return CanonicalAlert(
        tenant_id=delivery.tenant_id,
        source=source,
        source_ref=own_key or fingerprint,
        fingerprint=fingerprint,
        status=status,
        severity=severity,
        title=parse.first_text(notes.get("summary"), notes.get("title"), name)[:1024]
        or f"{source} alert",
        description=parse.first_text(notes.get("description"), notes.get("message")),
        service=service,
        environment=first_label(labels, ENVIRONMENT_LABELS),
        resource=first_label(labels, RESOURCE_LABELS),
        labels=labels,
        links=_links(obj, notes, group.external_url),
        started_at=parse.timestamp(obj.get("startsAt")) or delivery.received_at,
        received_at=delivery.received_at,
        ended_at=ended,
    )


def first_label(labels: Mapping[str, str], names: tuple[str, ...]) -> str:
    for name in names:
        value = labels.get(name)
        if value:
            return value
    return ""


def link(value: Any, base: str = "") -> str:
    """An http(s) URL, resolved against ``base`` when relative; '' for anything else.

    Only web URLs become links: a ``javascript:`` or truncated URL must never reach
    the UI as something to click.
    """
    url = parse.text(value, _MAX_URL + 1)
    if not url or len(url) > _MAX_URL:
        return ""
    # A group's alerts mostly share their links (one rule's generatorURL, one silence
    # form), so they are cached; a cap on what is cached bounds the cache's memory.
    if len(url) + len(base) <= 1024:
        return _web_url(url, base)
    return _web_url.__wrapped__(url, base)


@functools.lru_cache(maxsize=1024)
def _web_url(url: str, base: str) -> str:
    try:
        if base and not urlsplit(url).scheme:
            url = urljoin(base, url)
    except ValueError:
        return ""
    return web_url(url)


def _links(obj: Mapping[str, Any], notes: Mapping[str, Any], base: str) -> dict[str, str]:
    candidates = {
        "source": link(obj.get("generatorURL"), base),
        "runbook": link(parse.first_text(notes.get("runbook_url"), notes.get("runbook"))),
        "dashboard": link(
            parse.first_text(
                notes.get("dashboard_url"),
                notes.get("dashboard"),
                notes.get("grafana_url"),
                notes.get("grafana"),
            )
        ),
        "silence": link(obj.get("silenceURL"), base),
    }
    return {kind: url for kind, url in candidates.items() if url}


def _count(value: Any) -> int:
    """``truncatedAlerts`` as a non-negative int; anything unreadable counts as 0."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return max(int(float(value)), 0)
    except (ValueError, OverflowError):
        return 0
