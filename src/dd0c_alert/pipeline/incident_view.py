"""The incident as notifications show it, built from the store's incident detail."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dd0c_alert.correlation.rules import stored_label_view
from dd0c_alert.domain.models import Severity
from dd0c_alert.notify.model import AlertView, DeployView, IncidentView

#: How many of the incident's alerts a message lists (the worst and most repeated).
TOP_ALERTS = 5
#: How many alerts' labels routing looks at: enough for every service of a cascade.
ROUTED_ALERTS = 20


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _snoozed(detail: Mapping[str, Any]) -> bool:
    """Snoozed now: a snooze that ended (it is not cleared when it runs out) left a
    reopened incident's messages saying "Snoozed until" a time long past."""
    until = _at(detail.get("snoozed_until"))
    return until is not None and until > datetime.now(UTC)


def _actor(timeline: list[dict[str, Any]], kind: str, first: bool = False) -> str | None:
    """Who made the latest (``first``: the earliest) entry of this kind."""
    for entry in timeline if first else reversed(timeline):
        if entry.get("kind") == kind:
            return str(entry.get("actor") or "") or None
    return None


def incident_view(detail: Mapping[str, Any], tenant_id: str, url: str) -> IncidentView:
    alerts = list(detail.get("alerts", []))
    order = list(Severity)
    top = sorted(
        alerts,
        key=lambda a: (order.index(Severity(a["severity"])), -int(a["repeat_count"])),
    )[:TOP_ALERTS]
    timeline = list(detail.get("timeline", []))
    opened = _at(detail["opened_at"]) or datetime.now(UTC)
    return IncidentView(
        id=str(detail["id"]),
        tenant_id=tenant_id,
        title=str(detail["title"]),
        severity=Severity(detail["severity"]),
        status="snoozed" if detail["status"] == "open" and _snoozed(detail) else detail["status"],
        services=tuple(detail.get("services", [])),
        probable_root=detail.get("probable_root") or None,
        alert_count=int(detail["alert_count"]),
        dedup_count=int(detail.get("dedup_count", 0)),
        opened_at=opened,
        acknowledged_at=_at(detail.get("acknowledged_at")),
        resolved_at=_at(detail.get("resolved_at")),
        snoozed_until=_at(detail.get("snoozed_until")),
        noise_score=int(detail.get("noise_score", 0)),
        noise_reasons=tuple(detail.get("noise_reasons", [])),
        deploys=tuple(
            DeployView(
                service=d.get("service", ""),
                version=d.get("version", ""),
                author=d.get("author", ""),
                title=d.get("title", ""),
                url=d.get("url", ""),
                environment=d.get("environment", ""),
                started_at=_at(d.get("started_at")) or opened,
            )
            for d in detail.get("deploys", [])
        ),
        top_alerts=tuple(
            AlertView(
                title=a["title"],
                severity=Severity(a["severity"]),
                service=a["service"],
                status=a["status"],
                repeat_count=int(a["repeat_count"]),
                source=a["source"],
                source_url=next(iter(a.get("links", {}).values()), None),
                started_at=_at(a["started_at"]) or opened,
            )
            for a in top
        ),
        flapping=bool(detail.get("flapping")),
        url=url,
        # ``acknowledged_at`` is the first acknowledgement (a second after a reopen, or
        # one of an incident merged in later, does not move it): its author with it.
        acknowledged_by=_actor(timeline, "ack", first=True)
        if detail.get("acknowledged_at")
        else None,
        resolved_by=_actor(timeline, "resolve") if detail["status"] == "resolved" else None,
    )


def routing_labels(detail: Mapping[str, Any]) -> list[dict[str, str]]:
    """The label sets routes match an incident by: one per alert (the first
    ``ROUTED_ALERTS``), exactly as silences and inhibitions see them
    (:func:`stored_label_view`, ``resource`` included), so one matcher means the same
    in a route and in a rule, and a route for ``service="checkout"`` hears of every
    incident a checkout alert is in."""
    views = [stored_label_view(alert) for alert in list(detail.get("alerts", []))[:ROUTED_ALERTS]]
    return views or [{"severity": str(detail["severity"])}]


#: The incident fields an intent's state snapshot may hold (see ``outbox.STATE``).
STATE_FIELDS = ("status", "acknowledged_at", "resolved_at", "snoozed_until")


def as_of(detail: Mapping[str, Any], state: Any) -> dict[str, Any]:
    """The incident detail with its state as of an event: an event is sent after the
    fact, when the incident may have moved on (a ``resolved`` sent after the reopen
    that followed it must still say resolved). Alerts and counts stay current; an
    intent without a snapshot (written before there were any) changes nothing."""
    if not isinstance(state, Mapping):
        return dict(detail)
    return {**detail, **{k: state[k] for k in STATE_FIELDS if k in state}}
