"""The canonical shapes every provider is normalised into (design §4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from .urls import web_url


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class DeployStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELLED = "cancelled"


@dataclass(slots=True, kw_only=True)
class CanonicalAlert:
    """One alert as dd0c/alert understands it, whatever tool sent it.

    ``started_at`` is the provider's own event time: correlation runs on it, so a
    delayed or replayed delivery lands where it happened, not where it arrived.
    ``id``, ``event_id`` (the delivery it came in) and ``raw_ref`` (the archived raw
    payload) are filled in by the pipeline, not by providers.
    """

    tenant_id: str
    source: str
    source_ref: str
    fingerprint: str
    status: AlertStatus
    severity: Severity
    title: str
    started_at: datetime
    received_at: datetime
    description: str = ""
    service: str = ""
    environment: str = ""
    resource: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    ended_at: datetime | None = None
    raw_ref: str = ""
    event_id: str = ""
    id: str = ""


@dataclass(slots=True, kw_only=True)
class DeployEvent:
    """A deploy (or CI run that deploys) reported by a CI/CD tool.

    ``source_ref`` identifies the deploy at its source, so later status updates of the
    same deploy (created → in progress → success) update one record.
    """

    tenant_id: str
    source: str
    source_ref: str
    service: str
    status: DeployStatus
    started_at: datetime
    received_at: datetime
    environment: str = ""
    version: str = ""
    commit: str = ""
    author: str = ""
    title: str = ""
    url: str = ""
    finished_at: datetime | None = None
    raw_ref: str = ""
    event_id: str = ""
    id: str = ""

    def __post_init__(self) -> None:
        self.url = web_url(self.url)  # every CI tool's URL, checked in one place


Normalised = CanonicalAlert | DeployEvent
