"""What the renderers see of an incident: plain frozen values, no storage rows.

The outbox stores enough to rebuild these views, so a message rendered on a retry or
after a restart shows the incident's latest state (an event's status and times are
those of its own moment, kept with it), and renderers stay pure functions that
snapshot tests can pin down.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from dd0c_alert.domain.models import Severity

NotificationEvent = Literal[
    "opened", "updated", "acknowledged", "resolved", "reopened", "escalated", "merged", "snoozed"
]
IncidentStatus = Literal["open", "acknowledged", "resolved", "snoozed"]


@dataclass(frozen=True, slots=True)
class DeployView:
    """A deploy attached to the incident as a likely cause."""

    service: str
    version: str
    author: str
    title: str
    url: str
    environment: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class AlertView:
    """One of the incident's alerts, as shown in its top-alerts list."""

    title: str
    severity: Severity
    service: str
    status: Literal["firing", "resolved"]
    repeat_count: int
    source: str
    source_url: str | None
    started_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class IncidentView:
    """Everything a notification says about one incident.

    ``top_alerts`` holds at most a handful (the caller picks them); ``url`` links to
    the incident in the dashboard or API.
    """

    id: str
    tenant_id: str
    title: str
    severity: Severity
    status: IncidentStatus
    services: tuple[str, ...]
    probable_root: str | None
    alert_count: int
    dedup_count: int
    opened_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    snoozed_until: datetime | None = None
    noise_score: int = 0
    noise_reasons: tuple[str, ...] = ()
    deploys: tuple[DeployView, ...] = ()
    top_alerts: tuple[AlertView, ...] = ()
    flapping: bool = False
    url: str = ""
    acknowledged_by: str | None = None
    resolved_by: str | None = None


@dataclass(frozen=True, slots=True)
class NoisyAlert:
    """A fingerprint that fired often during the digest's day."""

    title: str
    fingerprint: str
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestView:
    """One tenant's day, for the daily digest mail."""

    tenant_name: str
    day: date
    incidents: int
    pages: int
    alerts: int
    top_noisy: tuple[NoisyAlert, ...] = ()
    open_suggestions: int = 0
    url: str = ""
