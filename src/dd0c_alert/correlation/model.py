"""What the correlation engine reads and decides (design §6). Pure data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from dd0c_alert.domain.models import Severity

GovernanceMode = Literal["audit", "strict"]


@dataclass(frozen=True, slots=True)
class Features:
    """Per-tenant switches, so a strategy can be turned on gradually. Their state is
    written into every decision's reasons."""

    topology: bool = True
    deploys: bool = True
    flapping: bool = True
    inhibition: bool = True


@dataclass(frozen=True, slots=True)
class TenantSettings:
    correlation_window_seconds: int = 300
    max_incident_span_seconds: int = 4 * 3600
    deploy_lookback_seconds: int = 900
    flap_threshold: int = 4
    flap_window_seconds: int = 3600
    governance_mode: GovernanceMode = "audit"
    never_suppress_services: frozenset[str] = frozenset()
    auto_resolve: bool = True
    features: Features = Features()
    #: The team's clock (an IANA name): its daily digest covers its calendar day and
    #: goes out after ``DD0C_DIGEST_HOUR`` on it. Schedules name their own (``TZ=``).
    time_zone: str = "UTC"


#: The whole-number settings' bounds (inclusive), for every way a setting is given
#: (``PATCH /v1/settings``, replay proposals): a window under 30 s groups nothing, one
#: over a day groups unrelated failures, and the engine's time arithmetic stays in range.
SETTING_BOUNDS: dict[str, tuple[int, int]] = {
    "correlation_window_seconds": (30, 86_400),
    "max_incident_span_seconds": (60, 30 * 86_400),
    "deploy_lookback_seconds": (0, 86_400),
    "flap_threshold": (2, 100),
    "flap_window_seconds": (60, 86_400),
}


def settings_from(defaults: TenantSettings, overrides: Mapping[str, Any]) -> TenantSettings:
    """Stored per-tenant overrides on top of the deployment's defaults; unknown keys
    are ignored so older rows survive newer versions."""
    known = {f.name for f in fields(TenantSettings)}
    values: dict[str, Any] = {k: v for k, v in overrides.items() if k in known}
    if "never_suppress_services" in values:
        values["never_suppress_services"] = frozenset(values["never_suppress_services"])
    if "features" in values:
        values["features"] = replace(defaults.features, **dict(values["features"]))
    return replace(defaults, **values)


def settings_dict(settings: TenantSettings) -> dict[str, Any]:
    return {
        **{f.name: getattr(settings, f.name) for f in fields(TenantSettings)},
        "never_suppress_services": sorted(settings.never_suppress_services),
        "features": asdict(settings.features),
    }


class IncidentStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class DeployRef:
    """A deploy the engine may name as likely cause."""

    id: str
    service: str
    started_at: datetime
    version: str = ""
    author: str = ""
    title: str = ""
    url: str = ""
    environment: str = ""


@dataclass(slots=True, kw_only=True)
class IncidentState:
    """An incident as the engine needs it. ``first_at``/``last_at`` span its alerts'
    event times; ``firing`` counts its alerts still firing; ``folded`` the deliveries
    folded into its alerts without a page (repeats, late copies, repeated resolves):
    kept here so a notification need not add up every alert of a storm.
    ``acknowledged_at`` and ``snoozed_until`` are set by people; the engine changes them
    only when it merges incidents (``engine.absorb``)."""

    id: str
    tenant_id: str
    status: IncidentStatus
    title: str
    severity: Severity
    services: set[str]
    first_at: datetime
    last_at: datetime
    alert_count: int = 0
    firing: int = 0
    folded: int = 0
    paged: bool = False
    resolved_at: datetime | None = None
    probable_root: str = ""
    deploys: list[DeployRef] = field(default_factory=list)
    noise_score: int = 0
    noise_reasons: list[str] = field(default_factory=list)
    fingerprints: set[str] = field(default_factory=set)
    flapping: set[str] = field(default_factory=set)  # fingerprints flagged flapping
    merged_into: str | None = None
    acknowledged_at: datetime | None = None
    snoozed_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Matcher:
    """Alertmanager-style matcher over an alert's labels (plus the pseudo-labels
    ``service``, ``severity``, ``source``, ``environment``, ``title``)."""

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    #: Recurring window, e.g. ``"sat,sun 02:00-04:00"`` (UTC); ``starts_at``/``ends_at`` bound it.
    schedule: str = ""
    author: str = ""
    comment: str = ""


@dataclass(frozen=True, slots=True)
class InhibitRule:
    id: str
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rules:
    silences: tuple[Silence, ...] = ()
    inhibitions: tuple[InhibitRule, ...] = ()
    #: service -> services it depends on (declared by the tenant).
    dependencies: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FingerprintHistory:
    """What history says about a fingerprint (last 7 days), for the noise score."""

    fired: int = 0
    quick_auto_resolved: int = 0  # resolved within 2 min without acknowledgement
    acknowledged: int = 0
    noise_feedback: int = 0
    useful_feedback: int = 0


class Outcome(StrEnum):
    NEW_INCIDENT = "new_incident"
    JOINED = "joined"
    LATE_JOINED = "late_joined"
    DEDUP = "dedup"
    RESOLVED = "resolved"


@dataclass(slots=True, kw_only=True)
class Decision:
    """What happened to one notification, and why, in words a person can check."""

    alert_id: str
    incident_id: str
    outcome: Outcome
    reasons: list[str]
    page: bool = False
    flapping: bool = False
    suppressed_by: str | None = None  # rule id, when a rule suppressed delivery
    would_suppress: str | None = None  # rule id, in audit mode
    inhibited_by: str | None = None  # alert id of the inhibiting source alert
