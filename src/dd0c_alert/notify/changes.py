"""Which incident changes a batch makes are worth telling people about (pure).

The worker snapshots the incidents it loaded before correlating a batch and asks,
after, what changed; each answer becomes an outbox intent in the batch transaction.
Only incidents that paged are told about: an incident whose alerts a rule suppressed
(strict governance) or that never reached a page has no message to send or update.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dd0c_alert.correlation.model import IncidentState, IncidentStatus
from dd0c_alert.domain.models import Severity

from .facts import utc


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a notification shows of an incident, before the batch."""

    status: IncidentStatus
    severity: Severity
    alert_count: int
    services: frozenset[str]
    paged: bool
    merged_into: str | None
    noise_score: int

    @classmethod
    def of(cls, incident: IncidentState) -> Snapshot:
        return cls(
            incident.status,
            incident.severity,
            incident.alert_count,
            frozenset(incident.services),
            incident.paged,
            incident.merged_into,
            incident.noise_score,
        )


def changes(
    before: Mapping[str, Snapshot], incidents: Mapping[str, IncidentState], touched: set[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(incident_id, event, detail)`` for each touched incident worth telling about:
    ``opened`` when it first pages, ``merged`` when it was folded into another,
    ``resolved`` / ``reopened`` on those transitions, ``updated`` when what a message
    shows changed (alerts, severity, services, noise). Sorted, so the outbox order
    does not depend on set order. Each detail keeps the incident's state after the
    batch (``state``), which its events tell however late they are sent."""
    told: list[tuple[str, str, dict[str, Any]]] = []
    for incident_id in sorted(touched):
        incident = incidents[incident_id]
        if not incident.paged:
            continue
        event = _event(Snapshot.of(incident), before.get(incident_id))
        if event is not None:
            into = {"into": incident.merged_into} if event == "merged" else {}
            told.append((incident_id, event, {**into, "state": _state(incident)}))
    return told


def _event(now: Snapshot, was: Snapshot | None) -> str | None:
    """The one event a batch's change of a paged incident makes, if any."""
    if now.merged_into is not None:
        return "merged" if was is None or was.merged_into is None else None
    if was is None or not was.paged:
        return "opened"
    if now.status is IncidentStatus.RESOLVED and was.status is not IncidentStatus.RESOLVED:
        return "resolved"
    if was.status is IncidentStatus.RESOLVED and now.status is not IncidentStatus.RESOLVED:
        return "reopened"
    return "updated" if now != was else None


def _state(incident: IncidentState) -> dict[str, Any]:
    """What the engine knows of the incident's state; what it does not (acknowledgement
    and snooze times, which people set) is read when the event is sent."""
    resolved = incident.resolved_at
    return {
        "status": incident.status.value,
        "resolved_at": None
        if resolved is None
        else utc(resolved).isoformat().replace("+00:00", "Z"),
    }
